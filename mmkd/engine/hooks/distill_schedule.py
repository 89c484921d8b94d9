"""Distillation schedules: a linear warm-up of the distillation weights, a stop.

The rules of ``distill_schedule = dict(...)`` (or a list of such dicts, one per group of losses)
in a config; ``mmkd.DistillWeightsHook`` turns them into a multiplier per distillation loss at
every iteration. Several rules on one loss multiply.
"""
import fnmatch
from typing import Dict, List, Optional, Sequence, Tuple

from .settings import merged_settings

#: the settings of one rule, with their defaults (the defaults change nothing)
DISTILL_SCHEDULE_DEFAULTS = dict(
    warmup_iters=0,  # iteration k (1-based) gets min(1, k / warmup_iters); 0: no warm-up
    stop_epoch=None,  # no distillation from epoch stop_epoch + 1 on (as mmrazor's StopDistillHook)
    stop_iter=None,  # no distillation after iteration stop_iter
    losses=None)  # loss names (keys of model.distiller.distill_losses, fnmatch patterns); None: all


class ScheduleRule:
    """One rule: a factor in [0, 1] per iteration for the losses it names."""

    def __init__(self, warmup_iters: int = 0, stop_epoch: Optional[int] = None,
                 stop_iter: Optional[int] = None,
                 losses: Optional[Sequence[str]] = None) -> None:
        for name, value, low in (('warmup_iters', warmup_iters, 0), ('stop_epoch', stop_epoch, 0),
                                 ('stop_iter', stop_iter, 0)):
            if value is not None and (not isinstance(value, int) or value < low):
                raise ValueError(f'distill_schedule.{name} must be an int >= {low} or None, '
                                 f'got {value!r}.')
        if isinstance(losses, str):
            losses = [losses]
        self.warmup_iters = warmup_iters or 0
        self.stop_epoch, self.stop_iter = stop_epoch, stop_iter
        self.losses = list(losses) if losses is not None else None

    @property
    def active(self) -> bool:
        """Whether the rule changes anything."""
        return bool(self.warmup_iters) or self.stop_epoch is not None or \
            self.stop_iter is not None

    def factor(self, iteration: int, epoch: int) -> float:
        """The factor of 1-based ``iteration`` in 0-based ``epoch`` (``runner.epoch``)."""
        if self.stop_epoch is not None and epoch >= self.stop_epoch:
            return 0.0
        if self.stop_iter is not None and iteration > self.stop_iter:
            return 0.0
        if self.warmup_iters:
            return min(1.0, iteration / self.warmup_iters)
        return 1.0

    def matching(self, loss_names: Sequence[str]) -> List[str]:
        """The loss names of this rule; an error names the real ones when a pattern matches none."""
        if self.losses is None:
            return list(loss_names)
        found = []
        for pattern in self.losses:
            hits = [n for n in loss_names if fnmatch.fnmatchcase(n, pattern)]
            if not hits:
                raise KeyError(f'distill_schedule.losses: {pattern!r} matches no distillation '
                               f'loss; the losses are {list(loss_names)}.')
            found += [n for n in hits if n not in found]
        return found


def schedule_rules(cfg) -> List[ScheduleRule]:
    """The active rules of the config's ``distill_schedule`` (a dict, a list, or None)."""
    given = cfg.get('distill_schedule', None)
    if not given:
        return []
    rules = []
    for rule in [given] if isinstance(given, dict) else list(given):
        merged_settings('distill_schedule', rule, DISTILL_SCHEDULE_DEFAULTS)
        rules.append(ScheduleRule(**rule))
    return [r for r in rules if r.active]


def schedule_factors(bound: Sequence[Tuple[ScheduleRule, List[str]]], iteration: int,
                     epoch: int) -> Dict[str, float]:
    """Loss name -> product of the factors of the rules naming it; ``bound`` pairs each rule
    with its :meth:`ScheduleRule.matching` loss names. Losses no rule names are left out (1)."""
    factors: Dict[str, float] = {}
    for rule, names in bound:
        f = rule.factor(iteration, epoch)
        for name in names:
            factors[name] = factors.get(name, 1.0) * f
    return factors
