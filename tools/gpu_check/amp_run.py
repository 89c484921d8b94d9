"""A short training run of a toy distillation config in mixed precision, checked step by step.

    python tools/gpu_check/amp_run.py CONFIG --dtype {float16,bfloat16,float32} --iters N
        --work-dir DIR --out RECORD.json [--check NAME] [--algorithm {mmkd,mmrazor}]
        [--workers N] [--data-root DIR] [--compare-to CHECK]

The config's model, data and optimizer, trained for ``--iters`` iterations (an iteration-based
loop, no validation, no checkpoint) with mmengine's ``AmpOptimWrapper`` in ``--dtype`` (float32:
the plain ``OptimWrapper``), the toy data written under ``--data-root`` on first use. The teacher's
weights are the toy teacher's when ``work_dirs/toy/`` holds them (``make toy``), else random.
Every iteration it checks:

- every logged loss is finite;
- the distillation losses are float32 (mmkd computes them in float32 whatever the models ran in);
- the student's recorded features are in ``--dtype`` (autocast did run the models in it).

``--algorithm mmrazor`` runs the same config through mmrazor's own ``SingleTeacherDistill`` and
``ConfigurableDistiller`` (its own loss class where mmrazor has one, e.g. ``PKDLoss``), for the
it/s comparison; its distillation losses are reported, not required to be float32.

The record (see ``summary.py``) holds the status, iterations per second after a warm-up (a fifth
of the run, at most 20 iterations), the first and last total loss and what failed.
"""
import argparse
import copy
import json
import math
import os
import os.path as osp
import sys
import time
import traceback
from typing import Dict

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

import mmkd  # noqa: F401

# the repository root: tools/gpu_check.sh puts it on PYTHONPATH, so that mmkd imports from it
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

#: mmkd loss types replaced by mmrazor's own class of the same method for ``--algorithm mmrazor``
MMRAZOR_LOSSES = {'mmkd.PKDLoss': 'mmrazor.PKDLoss'}
#: keys of DetectionDistill that mmrazor's SingleTeacherDistill also takes
MMRAZOR_ALGORITHM_KEYS = ('distiller', 'teacher_ckpt', 'data_preprocessor', 'init_cfg')


def mmrazor_model(model_cfg: dict) -> dict:
    """The model of an mmkd ``DetectionDistill`` config as mmrazor's own ``SingleTeacherDistill``
    with ``ConfigurableDistiller``: the same student, teacher, recorders and loss mappings."""
    from mmkd.models.algorithms.model_cfg import expand_model_cfg
    model_cfg = copy.deepcopy(dict(model_cfg))
    if not str(model_cfg.get('type', '')).endswith('DetectionDistill'):
        raise ValueError(f'expected an mmkd DetectionDistill model, got {model_cfg.get("type")!r}')
    distiller = dict(model_cfg['distiller'], type='mmrazor.ConfigurableDistiller')
    distiller['distill_losses'] = {
        name: dict(loss, type=MMRAZOR_LOSSES.get(loss['type'], loss['type']))
        for name, loss in distiller['distill_losses'].items()}
    model = {k: model_cfg[k] for k in MMRAZOR_ALGORITHM_KEYS if k in model_cfg}
    model.update(type='mmrazor.SingleTeacherDistill', distiller=distiller,
                 architecture=expand_model_cfg(model_cfg['architecture']),
                 teacher=expand_model_cfg(model_cfg['teacher']))
    return model


def build_cfg(config: str, *, dtype: str, iters: int, work_dir: str, algorithm: str = 'mmkd',
              workers: int = 2, data_root: str = None) -> Config:
    """The toy config turned into a short, iteration-based, validation-free run."""
    if iters < 1:
        raise ValueError(f'--iters must be at least 1, got {iters}')
    cfg = Config.fromfile(config)
    cfg.work_dir = work_dir
    cfg.launcher = 'none'
    loader = cfg.train_dataloader
    loader.dataset.data_root = osp.join(data_root or osp.join(work_dir, 'data'), '')
    loader.num_workers = workers
    loader.persistent_workers = workers > 0
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters + 1)
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator', 'test_dataloader', 'test_cfg',
                'test_evaluator'):
        cfg[key] = None
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
                                end=min(100, iters))]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                        interval=iters + 1, save_last=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=50)
    cfg.log_processor = dict(type='LogProcessor', by_epoch=False, window_size=50)
    cfg.randomness = dict(seed=0)
    if dtype != 'float32':
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.dtype = dtype
        cfg.optim_wrapper.loss_scale = 'dynamic'
    ckpt = cfg.model.get('teacher_ckpt')
    if ckpt and not osp.isfile(ckpt) and not osp.isfile(osp.join(REPO, ckpt)):
        cfg.model.teacher_ckpt = None  # a random teacher: the numerics are still exercised
    elif ckpt and not osp.isfile(ckpt):
        cfg.model.teacher_ckpt = osp.join(REPO, ckpt)
    if algorithm == 'mmrazor':
        cfg.model = mmrazor_model(cfg.model)
    elif algorithm != 'mmkd':
        raise ValueError(f"--algorithm must be 'mmkd' or 'mmrazor', got {algorithm!r}")
    return cfg


def _tensors(x):
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in _tensors(v)]
    return []


class CheckHook(Hook):
    """Records, every iteration, non-finite losses, the distillation losses' dtypes, the
    student's recorded feature dtypes and the time."""
    priority = 'VERY_LOW'

    def __init__(self):
        self.nonfinite: Dict[int, list] = {}
        self.distill_dtypes: Dict[str, str] = {}
        self.feature_dtypes = set()
        self.times = []
        self.losses = []

    def before_train(self, runner) -> None:
        from mmkd.models.recorders.kinds import is_module_recorder
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        distiller = model.distiller
        compute = distiller.compute_distill_losses

        def watched():
            for recorder in distiller.student_recorders.recorders.values():
                if is_module_recorder(recorder):
                    self.feature_dtypes.update(
                        str(t.dtype).replace('torch.', '')
                        for t in _tensors(recorder.data_buffer) if t.is_floating_point())
            losses = compute()
            for key, value in losses.items():
                self.distill_dtypes[key] = str(value.dtype).replace('torch.', '')
            return losses

        distiller.compute_distill_losses = watched

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.times.append(time.perf_counter())
        values = {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v)
                  for k, v in (outputs or {}).items() if 'loss' in k}
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            self.nonfinite[runner.iter] = bad
        if 'loss' in values:
            self.losses.append(values['loss'])

    def it_per_s(self) -> float:
        """Iterations per second after the warm-up (a fifth of the run, at most 20)."""
        n = len(self.times)
        warm = min(20, n // 5)
        if n - 1 <= warm:
            return float('nan')
        return (n - 1 - warm) / (self.times[-1] - self.times[warm])


def judge(hook: CheckHook, *, dtype: str, iters: int, algorithm: str) -> Dict:
    """Status and one-line result of a finished run."""
    problems = []
    done = len(hook.times)
    if done < iters:
        problems.append(f'only {done} of {iters} iterations ran')
    if hook.nonfinite:
        first = min(hook.nonfinite)
        problems.append(f'non-finite losses in {len(hook.nonfinite)} iteration(s), first at '
                        f'iteration {first}: {", ".join(hook.nonfinite[first])}')
    if not hook.distill_dtypes:
        problems.append('no distillation loss was computed')
    not_fp32 = sorted(k for k, v in hook.distill_dtypes.items() if v != 'float32')
    if not_fp32 and algorithm == 'mmkd':
        problems.append(f'distillation losses not float32: {", ".join(not_fp32)}')
    if dtype != 'float32' and dtype not in hook.feature_dtypes:
        problems.append(f'the student did not run in {dtype} (recorded features: '
                        f'{", ".join(sorted(hook.feature_dtypes)) or "none"})')
    losses = (f'loss {hook.losses[0]:.3g} -> {hook.losses[-1]:.3g}' if hook.losses else '')
    dtypes = sorted(set(hook.distill_dtypes.values()))
    facts = [f'{done} iterations', losses,
             f'distillation losses {"/".join(dtypes) or "none"}',
             f'student features {"/".join(sorted(hook.feature_dtypes)) or "none"}']
    return dict(status='FAIL' if problems else 'ok',
                result='; '.join(problems or [p for p in facts if p]))


def run(args) -> Dict:
    from mmengine.runner import Runner
    cfg = build_cfg(args.config, dtype=args.dtype, iters=args.iters, work_dir=args.work_dir,
                    algorithm=args.algorithm, workers=args.workers, data_root=args.data_root)
    teacher = 'toy teacher' if cfg.model.get('teacher_ckpt') else 'random teacher'
    record = dict(check=args.check or f'{args.algorithm} {osp.basename(args.config)} {args.dtype}',
                  config=osp.relpath(args.config, REPO), algorithm=args.algorithm,
                  dtype=args.dtype, iters=args.iters, teacher=teacher)
    if args.compare_to:
        record['compare_to'] = args.compare_to
    hook = CheckHook()
    try:
        runner = Runner.from_cfg(cfg)
        runner.register_hook(hook)
        runner.train()
    except Exception as e:  # reported in the record, with the end of the traceback
        record.update(status='FAIL', result=f'{type(e).__name__}: {str(e).splitlines()[0]}'[:300],
                      traceback=traceback.format_exc()[-4000:])
        return record
    record.update(judge(hook, dtype=args.dtype, iters=args.iters, algorithm=args.algorithm))
    record['result'] = f'{record["result"]}; {teacher}'
    record['it_s'] = hook.it_per_s()
    record['distill_dtypes'] = hook.distill_dtypes
    record['nonfinite'] = {str(k): v for k, v in hook.nonfinite.items()}
    if torch.cuda.is_available():
        record['max_memory_mib'] = torch.cuda.max_memory_allocated() / 2**20
    return record


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config')
    p.add_argument('--dtype', choices=('float16', 'bfloat16', 'float32'), required=True)
    p.add_argument('--iters', type=int, required=True)
    p.add_argument('--work-dir', required=True)
    p.add_argument('--out', required=True, help='the JSON record to write')
    p.add_argument('--check', help='the name in the summary table')
    p.add_argument('--algorithm', choices=('mmkd', 'mmrazor'), default='mmkd')
    p.add_argument('--workers', type=int, default=2, help='data loader workers')
    p.add_argument('--data-root', help='where the toy data is (written on first use); '
                   'default: WORK_DIR/data')
    p.add_argument('--compare-to', help='the check whose it/s this run is compared with')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.dtype != 'float32' and not torch.cuda.is_available():
        print(f'--dtype {args.dtype} needs a CUDA GPU (mmengine\'s AmpOptimWrapper); '
              'use --dtype float32 on a CPU.', file=sys.stderr)
        return 2
    record = run(args)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    with open(args.out, 'w') as f:
        json.dump(record, f, indent=1)
    print(f'{record["check"]}: {record["status"]}: {record["result"]}')
    return 0 if record['status'] == 'ok' else 1


if __name__ == '__main__':
    sys.exit(main())
