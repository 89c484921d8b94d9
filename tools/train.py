"""Train a detector or a distilled student: mmdet's tools/train.py with mmkd loaded.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                                 [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]

On top of mmdet's script: every config gets ``mmkd.ExactResumeHook`` (a resumed run continues
with the uninterrupted run's random numbers), ``--amp`` without a GPU is refused with what to do,
a failed download of pretrained weights names the module and the config key to set, and a
distributed run destroys its process group before the interpreter exits (without that, a gloo rank
can die of SIGABRT at exit: ``mmkd/engine/distributed_exit.py``).
"""
import argparse
import os
import os.path as osp

import mmkd  # noqa: F401  (torch-2.x shims before mmengine/mmrazor load checkpoints)
from mmengine.config import Config, DictAction
from mmengine.device import (is_cuda_available, is_mlu_available, is_musa_available,
                             is_npu_available)
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmkd.engine import add_exact_resume_hook, prepare_cpu_distributed, shut_down_distributed
from mmkd.engine.checkpoint_downloads import CheckpointDownloadError, explain_download_failure


def parse_args():
    parser = argparse.ArgumentParser(description='Train a detector (with distillation)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', default=False,
                        help='enable automatic-mixed-precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='enable automatically scaling LR.')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or without a value from the latest one in '
        'the work directory')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value pairs merged into it, '
        'e.g. model.teacher_ckpt=teacher.pth train_cfg.max_epochs=2')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        if not (is_cuda_available() or is_npu_available() or is_mlu_available()
                or is_musa_available()):
            raise SystemExit(
                '--amp needs a GPU: mmengine\'s AmpOptimWrapper runs on CUDA, NPU, MLU or MUSA '
                'devices, and this machine has none (torch sees no CUDA device). On a CPU, train '
                'without --amp (in float32).')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise RuntimeError('--auto-scale-lr needs `auto_scale_lr.base_batch_size` in the '
                               'config.')
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    add_exact_resume_hook(cfg)
    prepare_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    try:
        runner.train()
    except CheckpointDownloadError as e:
        raise explain_download_failure(runner.model, e) from e
    shut_down_distributed()  # before interpreter exit: see mmkd/engine/distributed_exit.py


if __name__ == '__main__':
    main()
