"""The weights of the distillation losses during training: measured, balanced, scheduled."""
import logging
import os.path as osp
from typing import Dict, List, Optional

import torch
from mmengine.dist import is_distributed, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop

from mmkd.registry import HOOKS
from .distill_schedule import schedule_factors, schedule_rules
from .loss_balance import (DETECTION, BalanceWindow, NeckGradientProbe, auto_weights,
                           format_table, is_detection_loss, is_distill_term,
                           loss_balance_settings, off_balance, summary_rows)
from .teacher_check import write_json

#: the file in the run's log directory (``<work_dir>/<timestamp>/``) with the measurements
RECORD_FILE = 'loss_balance.json'
#: the checkpoint entry that keeps automatic weights and a measurement in progress over a resume
CHECKPOINT_KEY = 'distill_weights'
PREFIX = 'distill.'
#: logged multipliers: ``distill_weight.<term>``
WEIGHT_KEY = 'distill_weight.'


def _unwrap(runner):
    return runner.model.module if is_model_wrapper(runner.model) else runner.model


def weight_hint(distiller, term: str, factor: float) -> str:
    """How to apply ``factor`` in the config: the loss's own weight argument when it has one."""
    loss_name = getattr(distiller, 'term_losses', {}).get(term, term)
    loss = distiller.distill_losses[loss_name] if loss_name in distiller.distill_losses else None
    attr = 'loss_weight' if term == loss_name else f'loss_weight_{term[len(loss_name) + 1:]}'
    current = getattr(loss, attr, None)
    if isinstance(current, (int, float)):
        return (f'model.distiller.distill_losses.{loss_name}.{attr} = {current:g} -> '
                f'{current * factor:.3g}')
    return f'multiply the weight of {term} in model.distiller.distill_losses.{loss_name} by ' \
           f'{factor:.3g}'


@HOOKS.register_module()
class DistillWeightsHook(Hook):
    """Measure, balance and schedule the distillation losses; one multiplier per term.

    On by default in mmkd's distillation configs (``configs/_base_/distill/coco_1x.py``). Its
    settings are two top-level config dicts (defaults: ``LOSS_BALANCE_DEFAULTS`` in
    :mod:`.loss_balance`, ``DISTILL_SCHEDULE_DEFAULTS`` in :mod:`.distill_schedule`):

    - ``loss_balance = dict(mode='monitor', warmup_iters=50)``: over iterations
      1..``warmup_iters`` it measures each logged distillation term (``distill.loss_x_fpn0``:
      per level where the loss has levels), its mean, its ratio to the mean of the summed
      detection losses (``student.loss_*``) and its share of the gradient at the student's neck
      output (one ``autograd.grad`` per term and one for the detection losses during those
      iterations only). At the end it logs the table, writes it to
      ``<work_dir>/<timestamp>/loss_balance.json``, and warns once per term whose ratio is above
      ``warn_above`` (10) or below ``warn_below`` (0.01), with the weight that brings it to 1.
      ``mode='auto'`` (mmkd's own heuristic, not from any paper) then fixes each term's
      multiplier so that its mean equals ``target`` times the detection losses' mean
      (``group='all'``: one multiplier for the sum of the terms), logs the multipliers and keeps
      them in the checkpoint, so a resumed run uses the same ones. ``loss_balance = None``: off.
    - ``distill_schedule = dict(warmup_iters=0, stop_epoch=None, stop_iter=None, losses=None)``
      (or a list of such rules): a linear warm-up (iteration k gets ``min(1, k /
      warmup_iters)``) and a stop, for the losses named in ``losses`` (fnmatch patterns over
      ``model.distiller.distill_losses``) or for all. When every loss is stopped the model's
      ``distillation_stopped`` flag (the one mmrazor's ``StopDistillHook`` sets) is set too, so
      the teacher is not run any more -- except under DDP with trainable connectors, whose
      parameters DDP would then miss: there the multipliers stay 0.

    Both act through one mechanism: ``DetectionDistiller.loss_weights``, a multiplier per loss
    or term applied where the distiller computes the losses; the multiplier of every term is
    logged as ``distill_weight.<term>`` whenever a schedule or automatic balancing is on.
    """

    priority = 'NORMAL'  # after RuntimeInfoHook, before LoggerHook in after_train_iter

    def __init__(self) -> None:
        self.balance: Optional[dict] = None
        self.bound: list = []  # (schedule rule, the loss names it covers)
        self.loss_names: List[str] = []
        self.window = BalanceWindow()
        self.window_done = False
        self.balance_weights: Dict[str, float] = {}  # term (no prefix) -> automatic multiplier
        self.terms: List[str] = []  # logged distillation terms (with prefix), in log order
        self._loaded: Optional[dict] = None
        self._probe: Optional[NeckGradientProbe] = None

    # ------------------------------------------------------------------ set-up
    def before_train(self, runner) -> None:
        model = _unwrap(runner)
        distiller = getattr(model, 'distiller', None)
        self.balance = loss_balance_settings(runner.cfg)
        rules = schedule_rules(runner.cfg)
        auto = bool(self.balance) and self.balance['mode'] == 'auto'
        if distiller is None:
            if self.balance or rules:
                print_log('DistillWeightsHook: the model has no distiller; loss_balance and '
                          'distill_schedule do nothing.', logger='current',
                          level=logging.WARNING)
            self.balance, self.bound = None, []
            return
        if (rules or auto) and not hasattr(distiller, 'loss_weights'):
            raise TypeError(
                f'distill_schedule and loss_balance mode="auto" set per-term multipliers, which '
                f"need model.distiller.type='mmkd.DetectionDistiller' (got "
                f'{type(distiller).__name__}).')
        if auto and not getattr(model, 'calculate_student_loss', True):
            raise ValueError('loss_balance mode="auto" balances the distillation terms against '
                             'the detection losses, but calculate_student_loss=False computes '
                             'none; use mode="monitor" or loss_balance = None.')
        if any(r.stop_epoch is not None for r in rules) and \
                not isinstance(runner.train_loop, EpochBasedTrainLoop):
            raise ValueError('distill_schedule.stop_epoch needs an epoch-based train loop; this '
                             f'one is {type(runner.train_loop).__name__}: use stop_iter.')
        self.loss_names = list(distiller.distill_losses.keys())
        self.bound = [(rule, rule.matching(self.loss_names)) for rule in rules]
        if self._loaded is not None:
            self.window.load_state_dict(self._loaded['window'])
            self.window_done = bool(self._loaded['window_done'])
            self.balance_weights = dict(self._loaded['balance_weights'])
            if self.balance_weights:
                print_log('loss balance: automatic weights from the checkpoint: '
                          f'{self._format_weights(self.balance_weights)}', logger='current')
        elif self.balance and runner.iter >= self.balance['warmup_iters']:
            self.window_done = True  # resumed past the window without its measurements
        parts = []
        if self.balance:
            parts.append(f'loss balance: {self.balance["mode"]} over iterations 1-'
                         f'{self.balance["warmup_iters"]}')
        for rule, names in self.bound:
            what = 'all losses' if rule.losses is None else ', '.join(names)
            plan = ([f'linear warm-up over {rule.warmup_iters} iterations']
                    if rule.warmup_iters else [])
            plan += [f'stop at epoch {rule.stop_epoch}'] if rule.stop_epoch is not None else []
            plan += [f'stop after iteration {rule.stop_iter}'] if rule.stop_iter is not None \
                else []
            parts.append(f'schedule ({what}): {", ".join(plan)}')
        if parts:
            print_log('distillation weights: ' + '; '.join(parts), logger='current')

    @property
    def _logs_weights(self) -> bool:
        return bool(self.bound) or bool(self.balance and self.balance['mode'] == 'auto')

    def _measuring(self, runner) -> bool:
        return bool(self.balance) and not self.window_done and \
            runner.iter < self.balance['warmup_iters']

    # ------------------------------------------------------------------ every iteration
    def _weights(self, iteration: int, epoch: int) -> Dict[str, float]:
        """``DetectionDistiller.loss_weights``: schedule factors by loss, automatic multipliers by
        term (a scalar loss's term is its loss name: the two multiply)."""
        weights = schedule_factors(self.bound, iteration, epoch)
        for term, w in self.balance_weights.items():
            weights[term] = weights.get(term, 1.0) * w if term in self.loss_names else w
        return weights

    def _can_skip_teacher(self, runner, model) -> bool:
        if not is_distributed():
            return True
        if not any(p.requires_grad for p in model.distiller.parameters()):
            return True
        return bool(getattr(runner.model, 'find_unused_parameters', False))

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        model = _unwrap(runner)
        if not self.bound and not self.balance_weights and not self._measuring(runner):
            return
        weights = self._weights(runner.iter + 1, runner.epoch)
        if hasattr(model.distiller, 'loss_weights'):  # not on mmrazor's plain distiller
            model.distiller.loss_weights = weights
        stopped = bool(self.loss_names) and all(
            weights.get(name, 1.0) == 0.0 for name in self.loss_names)
        if stopped and not model.distillation_stopped and self._can_skip_teacher(runner, model):
            model.distillation_stopped = True
            print_log(f'distillation stopped at iteration {runner.iter + 1} (epoch '
                      f'{runner.epoch + 1}): every distillation weight is 0, so the teacher is '
                      'not run any more.', logger='current')
        if self._measuring(runner) and self.balance['grad_share']:
            if self._probe is None:
                self._probe = NeckGradientProbe(model)
            self._probe.attach()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self._logs_weights and not self._measuring(runner):
            return
        model = _unwrap(runner)
        log_vars = {k: float(v.detach() if isinstance(v, torch.Tensor) else v)
                    for k, v in (outputs or {}).items()
                    if is_detection_loss(k) or is_distill_term(k)}
        new_terms = [k for k in log_vars if is_distill_term(k) and k not in self.terms]
        self.terms += new_terms
        weights = {t: model.distiller.term_weight(t[len(PREFIX):])
                   for t in self.terms} if hasattr(model.distiller, 'term_weight') else {}
        if self._logs_weights:
            if new_terms:
                self._log_current(runner, [WEIGHT_KEY + t[len(PREFIX):] for t in new_terms])
            for term, w in weights.items():
                runner.message_hub.update_scalar(f'train/{WEIGHT_KEY}{term[len(PREFIX):]}', w)
        if self._measuring(runner):
            self.window.add(log_vars, weights, self._probe.pop() if self._probe else None)
            if runner.iter + 1 == self.balance['warmup_iters']:
                self._finish_window(runner)

    @staticmethod
    def _log_current(runner, keys: List[str]) -> None:
        """Log these scalars as they are, not as a running mean: mmengine's LogProcessor
        averages every key containing 'loss' over ``window_size`` iterations, which would smear
        a weight's steps; a ``custom_cfg`` entry with ``method_name='current'`` says so."""
        custom = runner.log_processor.custom_cfg
        known = {c.get('data_src') for c in custom}
        custom += [dict(data_src=k, method_name='current') for k in keys if k not in known]

    def after_train(self, runner) -> None:
        if self.balance and not self.window_done and self.window.iters:
            self._finish_window(runner)  # training shorter than the window
        self._detach()

    def _detach(self) -> None:
        if self._probe is not None:
            self._probe.detach()

    # ------------------------------------------------------------------ end of the window
    def _format_weights(self, weights: Dict[str, float]) -> str:
        return ', '.join(f'{term}: {w:.4g}' for term, w in weights.items())

    def _finish_window(self, runner) -> None:
        self._detach()
        self.window_done = True
        self.window.reduce()
        rows = summary_rows(self.window)
        last = runner.iter + 1
        first = last - self.window.iters + 1
        print_log(format_table(rows, first, last), logger='current')
        distiller = _unwrap(runner).distiller
        det = next(r for r in rows if r['term'] == DETECTION)
        record = dict(settings=self.balance, first_iter=first, last_iter=last, rows=rows,
                      auto_weights=None)
        if det['mean'] is None:
            print_log('loss balance: no detection losses logged (calculate_student_loss=False?), '
                      'so no ratios.', logger='current', level=logging.WARNING)
        elif self.balance['mode'] == 'monitor':
            for row in off_balance(rows, self.balance['warn_above'], self.balance['warn_below']):
                term = row['term'][len(PREFIX):]
                grad = (f'; {row["grad_share"]:.0%} of the gradient norm at the neck output'
                        if row['grad_share'] is not None else '')
                if row['ratio'] > 0:
                    fix = (f'Weight x{1 / row["ratio"]:.3g} brings it to 1: '
                           f'{weight_hint(distiller, term, 1 / row["ratio"])}; or let mmkd '
                           "choose the weights: loss_balance = dict(mode='auto').")
                else:  # no weight helps a term that is 0 (or negative)
                    fix = ('No weight changes that: check what feeds it (its recorders, its '
                           'ground-truth or positive-sample region).')
                print_log(
                    f'loss balance: {row["term"]} is {row["ratio"]:.3g}x the summed detection '
                    f'losses (means {row["mean"]:.4g} vs {det["mean"]:.4g} over iterations '
                    f'{first}-{last}{grad}). {fix}', logger='current', level=logging.WARNING)
        else:
            chosen = auto_weights(rows, self.balance['target'], self.balance['group'])
            self.balance_weights = {t[len(PREFIX):]: w for t, w in chosen.items()}
            kept = [r['term'] for r in rows if r['term'] != DETECTION and r['term'] not in chosen]
            record['auto_weights'] = self.balance_weights
            print_log(
                "loss balance (mmkd's automatic balancing, not from any paper): from iteration "
                f'{last + 1} each {"term" if self.balance["group"] == "term" else "term sum"} '
                f'is {self.balance["target"]:g}x the detection losses; multipliers: '
                f'{self._format_weights(self.balance_weights)}'
                + (f'; kept at 1 (mean 0): {kept}' if kept else ''), logger='current')
        if is_main_process():
            write_json(osp.join(runner.log_dir, RECORD_FILE), record)

    # ------------------------------------------------------------------ checkpoints
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.balance or self.balance_weights:
            checkpoint[CHECKPOINT_KEY] = dict(window=self.window.state_dict(),
                                              window_done=self.window_done,
                                              balance_weights=dict(self.balance_weights))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # only a resume continues a run; load_from starts a new one (as mmengine's EMAHook)
        if getattr(runner, '_resume', False) and CHECKPOINT_KEY in checkpoint:
            self._loaded = checkpoint[CHECKPOINT_KEY]
