"""Statistics over training runs repeated with several seeds, paired by seed.

Two models trained with the same seed see the same data order and start from the same
initialisation, so their difference on that seed is one paired observation. Over ``n`` seeds
the differences ``d_i`` give the mean ``d``, the sample standard deviation ``s`` (``n - 1`` in
the denominator) and the 95% interval ``d +- t_{0.975, n-1} * s / sqrt(n)`` (Student's t with
``n - 1`` degrees of freedom). The verdict says whether that interval excludes 0.
"""
import math
from dataclasses import dataclass
from typing import Dict, Hashable, Iterable, Optional, Tuple

ONE_SEED = '1 seed: no interval'


def _t_central_mass(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer ``df``, exactly (Abramowitz & Stegun, Handbook
    of Mathematical Functions, 26.7.3 for odd and 26.7.4 for even ``df``), with
    ``theta = atan(t / sqrt(df))``:

    odd:  2/pi * (theta + sin(theta) * sum_k a_k cos(theta)^(2k+1)),  a_0 = 1,
          a_k = a_{k-1} * 2k / (2k+1),  k < (df-1)/2  (no sum for df = 1);
    even: sin(theta) * sum_k b_k cos(theta)^(2k),  b_0 = 1,  b_k = b_{k-1} * (2k-1) / (2k),
          k < df/2.
    """
    theta = math.atan(t / math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    if df % 2:
        total, coef = 0.0, 1.0
        for k in range((df - 1) // 2):
            if k:
                coef *= 2 * k / (2 * k + 1)
            total += coef * c**(2 * k + 1)
        return 2 / math.pi * (theta + s * total)
    total, coef = 0.0, 1.0
    for k in range(df // 2):
        if k:
            coef *= (2 * k - 1) / (2 * k)
        total += coef * c**(2 * k)
    return s * total


def t_critical(df: int, confidence: float = 0.95) -> float:
    """The two-sided critical value ``t_{(1+confidence)/2, df}`` of Student's t, e.g. 4.303
    for ``df=2``: the exact distribution function above, inverted by bisection."""
    if not isinstance(df, int) or df < 1:
        raise ValueError(f't_critical: df must be an integer >= 1, got {df!r}')
    if not 0 < confidence < 1:
        raise ValueError(f't_critical: confidence must lie in (0, 1), got {confidence!r}')
    low, high = 0.0, 1.0
    while _t_central_mass(high, df) < confidence:
        low, high = high, high * 2
    for _ in range(200):
        mid = (low + high) / 2
        if _t_central_mass(mid, df) < confidence:
            low = mid
        else:
            high = mid
        if high - low < 1e-12 * high:
            break
    return (low + high) / 2


def mean_sd(values: Iterable[float]) -> Tuple[float, Optional[float]]:
    """Mean and sample standard deviation (``n - 1``; None for a single value)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError('mean_sd: no values')
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, None
    return mean, math.sqrt(sum((v - mean)**2 for v in values) / (n - 1))


@dataclass
class PairedDifference:
    """``treated - control`` over the seeds both have: ``n`` pairs, their mean and sample
    standard deviation, the interval (None with one pair) and the verdict."""
    n: int
    mean: float
    sd: Optional[float]
    low: Optional[float]
    high: Optional[float]
    verdict: str
    confidence: float = 0.95


def paired_difference(treated: Dict[Hashable, float], control: Dict[Hashable, float],
                      confidence: float = 0.95) -> PairedDifference:
    """Difference of ``treated`` and ``control`` (seed -> value), paired by seed.

    Verdict: ``'better'`` when the interval lies above 0, ``'worse'`` when below,
    ``'no difference'`` when it holds 0, and :data:`ONE_SEED` with one pair (no interval).
    """
    seeds = [s for s in treated if s in control]
    if not seeds:
        raise ValueError(f'paired_difference: no seed in common (treated: {sorted(treated)}, '
                         f'control: {sorted(control)})')
    mean, sd = mean_sd(treated[s] - control[s] for s in seeds)
    n = len(seeds)
    if sd is None:
        return PairedDifference(n, mean, None, None, None, ONE_SEED, confidence)
    half = t_critical(n - 1, confidence) * sd / math.sqrt(n)
    low, high = mean - half, mean + half
    verdict = 'better' if low > 0 else 'worse' if high < 0 else 'no difference'
    return PairedDifference(n, mean, sd, low, high, verdict, confidence)
