"""Stop (or skip) a training step whose losses are NaN/Inf, before it touches the weights."""
import logging
import os.path as osp
from typing import Optional, Sequence

import torch
import torch.distributed as torch_dist
from mmengine.dist import is_distributed
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmkd.registry import HOOKS


#: the checkpoint of the last good step, written in the work directory when training stops
LAST_FINITE = 'last_finite.pth'


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or Inf; training stopped before the optimizer step."""


@HOOKS.register_module()
class DistillLossGuardHook(Hook):
    """Check every loss of a training step for NaN/Inf before the optimizer step.

    On by default in mmkd's distillation configs (``configs/_base_/distill/*.py``
    ``custom_hooks``). How: at ``before_train`` the hook wraps the model's ``parse_losses``
    (called by ``BaseModel.train_step`` and by ``MMDistributedDataParallel.train_step`` alike,
    after the forward and before ``optim_wrapper.update_params``) and the optimizer wrapper's
    ``update_params``; ``after_train`` removes both wrappers. All logged loss values of the step
    are checked together: one ``isfinite`` over a stacked tensor and one host transfer per step,
    not one per loss. Under DDP the flags are all-reduced first, so every rank stops or skips the
    same step (a rank that skipped alone would hang the others in the gradient all-reduce).

    Args:
        action (str): ``'error'`` (default) raises :class:`NonFiniteLossError` naming the
            iteration and every non-finite loss key (``distill.loss_pkd_fpn2`` names the loss
            and the level) before ``backward``, so the weights stay those of the last good step;
            they are saved first, with the optimizer and schedulers, as
            ``<work_dir>/last_finite.pth`` (:data:`LAST_FINITE`), which the error names.
            ``'skip'`` drops that step instead (gradients zeroed, no optimizer update, no
            momentum or weight-decay change) with a warning naming the keys.
        prefixes (Sequence[str], optional): only check loss keys starting with one of these
            (e.g. ``('distill.', )``). Defaults to None: every loss, since a NaN student loss
            corrupts the weights just as much.
        max_consecutive_skips (int, optional): with ``action='skip'``, stop with the error
            after this many skipped steps in a row (a run that NaNs every step is not
            training). None: never. Defaults to 50.
    """

    priority = 'VERY_HIGH'

    def __init__(self, action: str = 'error', prefixes: Optional[Sequence[str]] = None,
                 max_consecutive_skips: Optional[int] = 50) -> None:
        if action not in ('error', 'skip'):
            raise ValueError(f"DistillLossGuardHook action must be 'error' or 'skip', got "
                             f'{action!r}.')
        self.action = action
        self.prefixes = tuple(prefixes) if prefixes else None
        self.max_consecutive_skips = max_consecutive_skips
        self.skipped_steps = 0
        self._consecutive = 0
        self._skip_next_update = False
        self._patched: list = []

    # --------------------------------------------------------------- install / remove
    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        original_parse = model.parse_losses
        optim_wrapper = runner.optim_wrapper
        original_update = optim_wrapper.update_params

        def guarded_parse_losses(losses):
            loss, log_vars = original_parse(losses)
            self.check(runner, log_vars)
            return loss, log_vars

        def guarded_update_params(loss, *args, **kwargs):
            if self._skip_next_update:
                self._skip_next_update = False
                optim_wrapper.zero_grad()
                # keep gradient-accumulation bookkeeping as if a backward had happened
                optim_wrapper._inner_count += 1
                return None
            return original_update(loss, *args, **kwargs)

        model.parse_losses = guarded_parse_losses
        optim_wrapper.update_params = guarded_update_params
        self._patched = [(model, 'parse_losses'), (optim_wrapper, 'update_params')]

    def after_train(self, runner) -> None:
        for obj, name in self._patched:
            obj.__dict__.pop(name, None)
        self._patched = []

    # --------------------------------------------------------------- the check
    def _checked(self, log_vars: dict) -> list:
        keys = [k for k, v in log_vars.items() if isinstance(v, torch.Tensor) and k != 'loss']
        if self.prefixes:
            keys = [k for k in keys if k.startswith(self.prefixes)]
        elif 'loss' in log_vars and isinstance(log_vars['loss'], torch.Tensor):
            keys.append('loss')  # the sum can overflow when every term is finite
        return keys

    def check(self, runner, log_vars: dict) -> None:
        keys = self._checked(log_vars)
        if not keys:
            return
        bad = torch.stack([~torch.isfinite(log_vars[k].detach()).all() for k in keys]).int()
        if is_distributed():
            torch_dist.all_reduce(bad, op=torch_dist.ReduceOp.MAX)
        flags = bad.tolist()  # the one host sync of the check
        if not any(flags):
            self._consecutive = 0
            return
        names = [k for k, f in zip(keys, flags) if f]
        # the total is only named when no term explains it
        if len(names) > 1 and 'loss' in names:
            names.remove('loss')
        values = ', '.join(
            f'{k} = {float(log_vars[k].detach().float().mean())}' for k in names)
        it = runner.iter + 1
        if self.action == 'skip':
            self._consecutive += 1
            self.skipped_steps += 1
            if (self.max_consecutive_skips is None
                    or self._consecutive <= self.max_consecutive_skips):
                self._skip_next_update = True
                print_log(
                    f'DistillLossGuardHook: iteration {it}: non-finite loss ({values}); this '
                    f'optimizer step is skipped (no update). {self.skipped_steps} step(s) '
                    'skipped so far.', logger='current', level=logging.WARNING)
                return
        saved = self._save_last_finite(runner)
        raise NonFiniteLossError(
            f'Iteration {it}: non-finite loss ({values}'
            + (f'; {self._consecutive} steps in a row' if self.action == 'skip' else '') +
            '). Training stopped before the optimizer step, so the weights are those of the '
            f'last good step, saved in {saved} (start from them with load_from=..., or continue '
            'with --resume PATH). Fix: lower that loss\'s loss_weight or the learning rate, '
            'check its inputs (e.g. a connector or recorder on the wrong module), or configure '
            "custom_hooks=[dict(type='mmkd.DistillLossGuardHook', action='skip')] to skip "
            'such steps.')

    @staticmethod
    def _save_last_finite(runner) -> str:
        """Save the current (last good) weights, optimizer and schedulers as
        :data:`LAST_FINITE` in the work directory; return its path."""
        # epoch and iteration of the last step that completed: a resume continues after it
        runner.save_checkpoint(runner.work_dir, LAST_FINITE,
                               meta=dict(epoch=runner.epoch, iter=runner.iter), by_epoch=False)
        return osp.join(runner.work_dir, LAST_FINITE)
