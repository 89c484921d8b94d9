"""Loss balance: the size of each distillation term next to the detection losses.

The measurements of ``mmkd.DistillWeightsHook`` over its first ``warmup_iters`` iterations:
each distillation term's mean, its ratio to the mean of the summed detection losses, and its
share of the gradient at the student's neck output; the warnings for terms far off balance; and
the weights of mmkd's automatic balancing (``mode='auto'``, mmkd's own heuristic, not from a
paper). Pure bookkeeping: the hook feeds it, so it is tested without a runner.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.dist import all_reduce

from .settings import merged_settings

#: the settings of ``loss_balance = dict(...)`` in a config, with their defaults
LOSS_BALANCE_DEFAULTS = dict(
    mode='monitor',  # 'monitor': measure and warn; 'auto': also fix the weights (mmkd's own)
    warmup_iters=50,  # the measured window: iterations 1..warmup_iters
    target=1.0,  # 'auto': each term's mean (or all of them together) = target x detection
    group='term',  # 'auto': 'term' balances each term, 'all' their sum (keeps proportions)
    warn_above=10.0,  # warn for a term larger than this many times the detection losses
    warn_below=0.01,  # ... or smaller than this fraction of them
    grad_share=True)  # measure each term's gradient at the neck output (costs a backward)
MODES = ('monitor', 'auto')
GROUPS = ('term', 'all')
DETECTION = 'detection'  # the summed detection losses, in gradient norms
TOTAL = 'total'  # detection + every distillation term


def loss_balance_settings(cfg) -> Optional[dict]:
    """The config's ``loss_balance`` merged into the defaults; None when it is off."""
    given = cfg.get('loss_balance', {})
    if given is None or given is False:
        return None
    settings = merged_settings('loss_balance', given, LOSS_BALANCE_DEFAULTS,
                               ' (or loss_balance = None for none)')
    if settings['mode'] not in MODES:
        raise ValueError(f'loss_balance.mode must be one of {MODES}, got {settings["mode"]!r}.')
    if settings['group'] not in GROUPS:
        raise ValueError(f'loss_balance.group must be one of {GROUPS}, got '
                         f'{settings["group"]!r}.')
    if not isinstance(settings['warmup_iters'], int) or settings['warmup_iters'] < 1:
        raise ValueError(f'loss_balance.warmup_iters must be an int >= 1, got '
                         f'{settings["warmup_iters"]!r}.')
    if not settings['target'] > 0:
        raise ValueError(f'loss_balance.target must be > 0, got {settings["target"]!r}.')
    return settings


def is_detection_loss(key: str) -> bool:
    """A student task loss as logged by the distillation algorithm (``student.loss_cls``)."""
    return key.startswith('student.') and 'loss' in key


def is_distill_term(key: str) -> bool:
    """A distillation term summed into the total (``distill.loss_pkd_fpn0``)."""
    return key.startswith('distill.') and 'loss' in key


def _scalar(value) -> torch.Tensor:
    """A loss entry as ``parse_losses`` reduces it: a tensor's mean, a list's sum of means."""
    if isinstance(value, torch.Tensor):
        return value.mean()
    return sum(v.mean() for v in value)


def gradient_norms(losses: Dict[str, object],
                   feats: Sequence[torch.Tensor]) -> Dict[str, float]:
    """L2 norms of the gradients at ``feats`` (the student's neck outputs) of the summed
    detection losses (:data:`DETECTION`), of each distillation term (its ``distill.`` key) and of
    their sum (:data:`TOTAL`, the gradient that training back-propagates through the neck).

    One ``autograd.grad`` per term and one for the detection losses, each keeping the graph for
    the training step's own backward; the running total is the only extra buffer.
    """
    feats = [f for f in feats if isinstance(f, torch.Tensor) and f.requires_grad]
    parts: List[Tuple[str, torch.Tensor]] = []
    det = [_scalar(v) for k, v in losses.items() if is_detection_loss(k)]
    if det:
        parts.append((DETECTION, sum(det)))
    parts += [(k, _scalar(v)) for k, v in losses.items() if is_distill_term(k)]
    norms: Dict[str, float] = {}
    total: Optional[List[torch.Tensor]] = None
    for name, value in parts:
        if not feats or not value.requires_grad:
            norms[name] = 0.0
            continue
        grads = torch.autograd.grad(value, feats, retain_graph=True, allow_unused=True)
        grads = [torch.zeros_like(f) if g is None else g.float() for f, g in zip(feats, grads)]
        norms[name] = math.sqrt(sum(float(g.pow(2).sum()) for g in grads))
        total = grads if total is None else [t + g for t, g in zip(total, grads)]
    norms[TOTAL] = 0.0 if total is None else math.sqrt(sum(float(t.pow(2).sum()) for t in total))
    return norms


class NeckGradientProbe:
    """While attached: keep the student's neck output of each training forward and, when the
    algorithm returns its losses (still with their graph, before the backward), measure
    :func:`gradient_norms` there; :meth:`pop` hands over the last measurement.

    Works through forward hooks on ``model.student.neck`` and on the algorithm, so it sees the
    losses under DDP too (the wrapper calls the algorithm's forward); ``autograd.grad`` towards
    the neck output reaches no parameter, so no gradient is accumulated and DDP's reducer is
    not involved.
    """

    def __init__(self, model) -> None:
        self.model = model
        self.neck = getattr(getattr(model, 'student', None), 'neck', None)
        self._handles: list = []
        self._feats = None
        self._norms: Optional[Dict[str, float]] = None

    @property
    def available(self) -> bool:
        return self.neck is not None

    def attach(self) -> None:
        if self.available and not self._handles:
            self._handles = [self.neck.register_forward_hook(self._keep),
                             self.model.register_forward_hook(self._measure)]

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles, self._feats = [], None

    def _keep(self, module, args, output) -> None:
        if module.training:
            self._feats = output

    def _measure(self, module, args, output) -> None:
        if not isinstance(output, dict) or self._feats is None:
            return
        feats, self._feats = self._feats, None
        self._norms = gradient_norms(
            output, list(feats) if isinstance(feats, (tuple, list)) else [feats])

    def pop(self) -> Optional[Dict[str, float]]:
        norms, self._norms = self._norms, None
        return norms


class BalanceWindow:
    """Sums over the measured iterations, reduced over ranks at the end.

    ``add`` takes one iteration: the logged values (``log_vars``), the multiplier each term was
    trained with (to recover its value before the multiplier, which automatic balancing scales)
    and, optionally, the gradient norms of :func:`gradient_norms`.
    """

    def __init__(self) -> None:
        self.sums: Dict[str, float] = {}  # 'value/<term>', 'raw/<term>', 'grad/<name>'
        self.counts: Dict[str, int] = {}
        self.iters = 0

    def _add(self, key: str, value: float) -> None:
        # the key exists even for a non-finite value: every rank must reduce the same keys
        self.sums.setdefault(key, 0.0)
        self.counts.setdefault(key, 0)
        if math.isfinite(value):
            self.sums[key] += value
            self.counts[key] += 1

    def add(self, log_vars: Dict[str, float], weights: Dict[str, float],
            grad_norms: Optional[Dict[str, float]] = None) -> None:
        det = [v for k, v in log_vars.items() if is_detection_loss(k)]
        if det:
            self._add(f'value/{DETECTION}', float(sum(det)))
        for key, value in log_vars.items():
            if not is_distill_term(key):
                continue
            self._add(f'value/{key}', float(value))
            weight = weights.get(key, 1.0)
            if weight > 0:
                self._add(f'raw/{key}', float(value) / weight)
        for name, norm in (grad_norms or {}).items():
            self._add(f'grad/{name}', norm)
        self.iters += 1

    def reduce(self) -> None:
        """Sum over ranks (every rank measured the same keys: same config, same model)."""
        keys = sorted(self.sums)
        if not keys:
            return
        packed = torch.tensor([[self.sums[k], self.counts[k]] for k in keys],
                              dtype=torch.float64)
        all_reduce(packed)  # a no-op without DDP
        for k, (s, c) in zip(keys, packed.tolist()):
            self.sums[k], self.counts[k] = s, int(c)

    def mean(self, key: str) -> Optional[float]:
        return self.sums[key] / self.counts[key] if self.counts.get(key) else None

    def terms(self) -> List[str]:
        return [k[len('value/'):] for k in self.sums
                if k.startswith('value/') and k != f'value/{DETECTION}']

    def state_dict(self) -> dict:
        return dict(sums=dict(self.sums), counts=dict(self.counts), iters=self.iters)

    def load_state_dict(self, state: dict) -> None:
        self.sums, self.counts = dict(state['sums']), dict(state['counts'])
        self.iters = int(state['iters'])


def summary_rows(window: BalanceWindow) -> List[dict]:
    """One row per distillation term: mean, ratio to the detection losses, gradient share
    (``||d term / d neck|| / ||d total / d neck||``) and gradient ratio to the detection losses'
    (None where not measured), then the detection losses' own row."""
    det = window.mean(f'value/{DETECTION}')
    grad_total = window.mean(f'grad/{TOTAL}')
    grad_det = window.mean(f'grad/{DETECTION}')

    def share(key):
        g = window.mean(f'grad/{key}')
        return g / grad_total if g is not None and grad_total else None

    rows = []
    for term in window.terms():
        mean = window.mean(f'value/{term}')
        grad = window.mean(f'grad/{term}')
        rows.append(dict(
            term=term, mean=mean, raw_mean=window.mean(f'raw/{term}'),
            ratio=mean / det if det else None, grad_share=share(term),
            grad_ratio=grad / grad_det if grad is not None and grad_det else None))
    rows.append(dict(term=DETECTION, mean=det, raw_mean=det, ratio=1.0 if det else None,
                     grad_share=share(DETECTION), grad_ratio=1.0 if grad_det else None))
    return rows


def format_table(rows: List[dict], first: int, last: int) -> str:
    def fmt(v, spec):
        return '-' if v is None else format(v, spec)

    width = max(len(r['term']) for r in rows)
    lines = [f'loss balance over iterations {first}-{last} (ratio: term mean / mean of the '
             'summed detection losses; grad share: ||d term/d neck output|| / ||d total/d neck '
             'output||)',
             f'{"term":<{width}}  {"mean":>10}  {"ratio":>8}  {"grad share":>10}']
    for r in rows:
        lines.append(f'{r["term"]:<{width}}  {fmt(r["mean"], "10.4g")}  '
                     f'{fmt(r["ratio"], "8.3g")}  {fmt(r["grad_share"], "10.1%")}')
    return '\n'.join(lines)


def off_balance(rows: List[dict], warn_above: float, warn_below: float) -> List[dict]:
    """The rows of terms whose ratio is above ``warn_above`` or below ``warn_below``."""
    return [r for r in rows if r['term'] != DETECTION and r['ratio'] is not None
            and (r['ratio'] > warn_above or r['ratio'] < warn_below)]


def auto_weights(rows: List[dict], target: float, group: str) -> Dict[str, float]:
    """mmkd's automatic balancing: multipliers that make each term's mean (``group='term'``)
    or the sum of all terms (``'all'``, which keeps the method's own proportions) equal to
    ``target`` times the detection losses' mean, from the means before any multiplier."""
    det = next(r['mean'] for r in rows if r['term'] == DETECTION)
    terms = [r for r in rows if r['term'] != DETECTION]
    if not det:
        return {}
    if group == 'all':
        total = sum(r['raw_mean'] or 0.0 for r in terms)
        return {r['term']: target * det / total for r in terms} if total > 0 else {}
    return {r['term']: target * det / r['raw_mean'] for r in terms
            if r['raw_mean'] and r['raw_mean'] > 0}
