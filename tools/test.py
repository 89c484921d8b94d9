"""Evaluate a checkpoint (COCO mAP): mmdet's tools/test.py with mmkd loaded.

Works with a distillation config and its training checkpoint, and with a plain detector config and
a checkpoint from tools/export_student.py. With a distillation config only the student is built
and loaded (strictly): the teacher is not needed to evaluate the student, so its checkpoint is not
read or downloaded (`--full-model` builds the whole distillation model instead, as mmrazor does).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl]
                         [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
"""
import argparse
import os
import os.path as osp

import mmkd  # noqa: F401
from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmkd.engine import prepare_cpu_distributed, shut_down_distributed
from mmkd.models.algorithms.student_only import (is_distillation_cfg, load_student_weights,
                                                 student_model_cfg)


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', type=str, help='dump predictions to a pickle file')
    parser.add_argument('--show-dir', help='save painted predictions to this directory')
    parser.add_argument('--full-model', action='store_true',
                        help='with a distillation config, build the whole model (teacher '
                        'included, its checkpoint loaded) instead of the student alone')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value pairs merged into it')
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
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} does not exist.')
    student_only = is_distillation_cfg(cfg.model) and not args.full_model
    if student_only:
        cfg.model = student_model_cfg(cfg.model)
        cfg.load_from = None  # loaded below, student weights only
    else:
        cfg.load_from = args.checkpoint

    if args.show_dir:
        from mmdet.engine.hooks.utils import trigger_visualization_hook
        args.show, args.wait_time = False, 0
        cfg = trigger_visualization_hook(cfg, args)

    prepare_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if student_only:
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        load_student_weights(model, args.checkpoint)
        runner.logger.info(f'Evaluating the student of {args.checkpoint} (teacher not built).')
    if args.out is not None:
        from mmdet.evaluation import DumpDetResults
        assert args.out.endswith(('.pkl', '.pickle')), 'The dump file must be a pkl file.'
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    runner.test()
    shut_down_distributed()  # before interpreter exit: see mmkd/engine/distributed_exit.py


if __name__ == '__main__':
    main()
