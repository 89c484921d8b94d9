"""Hooks used by tests/test_hardening.py inside training subprocesses (PYTHONPATH=tests)."""
import json
import os
import os.path as osp
import signal

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class LossRecorderHook(Hook):
    """Append ``{"iter": i, "losses": {...}}`` per training iteration to work_dir/losses.jsonl."""

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if get_rank() != 0:
            return
        losses = {k: float(v) for k, v in (outputs or {}).items()}
        with open(osp.join(runner.work_dir, 'losses.jsonl'), 'a') as f:
            f.write(json.dumps(dict(iter=runner.iter + 1, losses=losses)) + '\n')
            f.flush()
            os.fsync(f.fileno())


@HOOKS.register_module()
class KillAtIterHook(Hook):
    """SIGKILL this process after iteration ``$MMKD_KILL_AT_ITER`` (when the variable is set)."""

    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        at = os.environ.get('MMKD_KILL_AT_ITER')
        if at and runner.iter + 1 == int(at):
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class SaveRankStateHook(Hook):
    """Save each rank's weights to work_dir/rank<r>.pth after training."""

    def after_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        torch.save(model.state_dict(), osp.join(runner.work_dir, f'rank{get_rank()}.pth'))
