"""What mmkd's distillation diagnostics cost, on a toy run, as ratios.

    python tools/analysis_tools/benchmark_diagnostics.py [--config CONFIG] [--steps 6]
        [--warmup 2] [--teacher-ckpt CKPT]

For a distillation config (default: the toy PKD GFL config; its teacher is random unless its
``teacher_ckpt`` exists or ``--teacher-ckpt`` is given, which changes the number of detections
and so NMS and COCO evaluation a little):

  (a) the teacher check: one evaluation of the teacher as ``mmkd.TeacherCheckHook`` runs it
      (the config's ``teacher_check.num_images`` validation images, its evaluator), against
      one training step of the distillation, and against the whole run's training steps
      (``max_epochs`` x the iterations of an epoch);
  (b) the loss-balance monitor: a training step (forward, backward, SGD step) with the gradient
      norms at the neck measured, as during the monitor's window, against a plain step,
      interleaved round by round, medians over ``--steps`` rounds after ``--warmup``; and what
      that adds to the run when the window is the config's ``loss_balance.warmup_iters``.
"""
import argparse
import os.path as osp
import statistics
import tempfile
import time

import torch

import mmkd  # noqa: F401
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope
from mmengine.runner import Runner

from mmkd.engine.hooks.loss_balance import NeckGradientProbe, loss_balance_settings
from mmkd.engine.hooks.teacher_check import evaluate_teacher, teacher_check_settings
from mmkd.models.algorithms.model_cfg import expand_model_cfg

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', default=osp.join(
        REPO, 'configs/toy/pkd_gfl_r18-fpn-20e_gfl_r18-fpn_toy.py'))
    p.add_argument('--steps', type=int, default=6)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--teacher-ckpt', help='the teacher weights (default: the config\'s, if the '
                   'file exists, else random weights)')
    return p.parse_args()


def main():
    args = parse_args()
    init_default_scope('mmdet')
    cfg = Config.fromfile(args.config)
    work = tempfile.mkdtemp(prefix='benchmark_diagnostics_')
    ckpt = args.teacher_ckpt or cfg.model.get('teacher_ckpt')
    if not ckpt or not osp.isfile(ckpt):
        teacher = MODELS.build(expand_model_cfg(cfg.model.teacher))
        ckpt = osp.join(work, 'random_teacher.pth')
        torch.save(dict(state_dict=teacher.state_dict()), ckpt)
        print(f'teacher: random weights ({cfg.model.get("teacher_ckpt")} not found)')
    cfg.model.teacher_ckpt = ckpt
    cfg.work_dir = work
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    model = runner.model
    model.train()
    loader = runner.train_dataloader
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9)

    def step(batch):
        start = time.perf_counter()
        data = model.data_preprocessor(batch, True)
        loss, _ = model.parse_losses(model(**data, mode='loss'))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return time.perf_counter() - start

    probe = NeckGradientProbe(model)
    plain, monitored = [], []
    batches = iter(loader)
    for r in range(args.warmup + args.steps):
        batch = next(batches)
        t_plain = step(batch)
        probe.attach()
        t_monitored = step(batch)
        assert probe.pop(), 'no gradient norms measured'
        probe.detach()
        if r >= args.warmup:
            plain.append(t_plain)
            monitored.append(t_monitored)
    step_s = statistics.median(plain)
    ratio = statistics.median(m / p for m, p in zip(monitored, plain))

    settings = teacher_check_settings(cfg) or teacher_check_settings(Config())
    record = evaluate_teacher(runner, model, settings)
    run_steps = cfg.train_cfg.max_epochs * len(loader)
    window = (loss_balance_settings(cfg) or loss_balance_settings(Config()))['warmup_iters']
    window = min(window, run_steps)
    print(f'config: {osp.relpath(args.config, REPO)}; {run_steps} training steps '
          f'({cfg.train_cfg.max_epochs} epochs x {len(loader)})')
    print(f'(a) teacher check on {record["num_images"]} images = '
          f'{record["seconds"] / step_s:.1f} training steps = '
          f'{100 * record["seconds"] / (step_s * run_steps):.2f}% of the run\'s steps '
          f'({record["seconds"]:.1f} s; a step {step_s:.2f} s)')
    print(f'(b) monitor: a step in its window / a plain step = {ratio:.2f} (median of '
          f'{args.steps}); the whole run with a {window}-step window: '
          f'{1 + (ratio - 1) * window / run_steps:.3f}x')


if __name__ == '__main__':
    main()
