"""tools/toy_main_job.py: paired statistics over seeds."""
import math

import pytest

from mmkd.utils.paired_stats import ONE_SEED, mean_sd, paired_difference, t_critical


# --- statistics ---------------------------------------------------------------------------

def test_t_critical_matches_published_quantiles():
    # two-sided 95% points of Student's t (any statistics table), 3 decimals
    table = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 9: 2.262, 10: 2.228,
             20: 2.086, 29: 2.045, 30: 2.042, 60: 2.000, 120: 1.980}
    for df, expected in table.items():
        assert t_critical(df) == pytest.approx(expected, abs=5e-4), df
    # closed forms: df 1 is Cauchy, t = tan(pi/2 * 0.95); df 2: t = c * sqrt(2 / (1 - c^2))
    assert t_critical(1) == pytest.approx(math.tan(math.pi / 2 * 0.95), rel=1e-9)
    assert t_critical(2) == pytest.approx(0.95 * math.sqrt(2 / (1 - 0.95**2)), rel=1e-9)
    assert t_critical(2, confidence=0.5) == pytest.approx(0.5 * math.sqrt(2 / 0.75), rel=1e-9)
    assert t_critical(5, confidence=0.99) == pytest.approx(4.032, abs=5e-4)
    assert t_critical(2000) == pytest.approx(1.961, abs=1e-3)  # -> the normal's 1.960
    with pytest.raises(ValueError, match='df'):
        t_critical(0)


def test_mean_and_sample_sd():
    assert mean_sd([20.0, 22.0, 21.0]) == (21.0, 1.0)  # squares 1 + 1 + 0 over n - 1 = 2
    assert mean_sd([7.5]) == (7.5, None)


def test_paired_difference_of_three_seeds_by_hand():
    # seed:        0     1     2
    # baseline:  20.0  22.0  21.0
    # distilled: 23.0  24.0  25.0   differences 3, 2, 4
    # mean 3; sd sqrt(((3-3)^2 + (2-3)^2 + (4-3)^2) / 2) = 1; t_{0.975, 2} = 4.303
    # half width 4.303 * 1 / sqrt(3) = 2.484: interval [0.516, 5.484], above 0: better
    base = {'0': 20.0, '1': 22.0, '2': 21.0}
    d = paired_difference({'0': 23.0, '1': 24.0, '2': 25.0}, base)
    assert (d.n, d.mean, d.sd, d.verdict) == (3, 3.0, 1.0, 'better')
    assert d.low == pytest.approx(0.516, abs=1e-3) and d.high == pytest.approx(5.484, abs=1e-3)
    # differences 1, -1, 3: mean 1, sd sqrt((0 + 4 + 4) / 2) = 2, half 4.303 * 2 / sqrt(3)
    # = 4.969: [-3.969, 5.969] holds 0
    d = paired_difference({'0': 21.0, '1': 21.0, '2': 24.0}, base)
    assert (d.mean, d.sd, d.verdict) == (1.0, 2.0, 'no difference')
    assert d.low == pytest.approx(-3.969, abs=1e-3) and d.high == pytest.approx(5.969, abs=1e-3)
    # the first case the other way round: [-5.484, -0.516], below 0
    d = paired_difference(base, {'0': 23.0, '1': 24.0, '2': 25.0})
    assert d.verdict == 'worse' and d.high == pytest.approx(-0.516, abs=1e-3)


def test_paired_difference_pairs_by_seed_and_says_so_with_one_seed():
    # paired by seed, not by position; seed 1 has no baseline: two pairs, 26-21=5 and 23-20=3
    d = paired_difference({'2': 26.0, '0': 23.0, '1': 99.0}, {'0': 20.0, '2': 21.0})
    assert (d.n, d.mean, d.sd) == (2, 4.0, math.sqrt(2))
    # half width 12.706 * sqrt(2) / sqrt(2) = 12.706
    assert d.low == pytest.approx(4 - 12.706, abs=1e-3) and d.verdict == 'no difference'
    d = paired_difference({'0': 30.0}, {'0': 20.0})
    assert (d.n, d.mean, d.sd, d.low, d.high, d.verdict) == (1, 10.0, None, None, None, ONE_SEED)
    assert d.verdict == '1 seed: no interval'
    with pytest.raises(ValueError, match='no seed in common'):
        paired_difference({'0': 1.0}, {'1': 1.0})
