"""Every feature-distillation config builds and trains one step on CPU with finite losses."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, init_default_scope

import mmkd  # noqa: F401
from _toy import REPO, tiny_batch

METHODS = ('pkd', 'cwd', 'fgd', 'mgd', 'defeat', 'reviewkd')
#: one training step each; the 2x configs are their 1x configs on another schedule, checked key
#: by key in tests/test_configs_layout.py
CONFIGS = sorted(
    p for m in METHODS
    for p in glob.glob(osp.join(REPO, 'configs', m, f'{m}_*_1x_coco.py')) +
    glob.glob(osp.join(REPO, 'configs', 'toy', f'{m}_*_toy.py')))


def test_every_method_has_coco_and_toy_configs():
    names = [osp.basename(p) for p in CONFIGS]
    for m in METHODS:
        assert any(n.startswith(m + '_') and n.endswith('_coco.py') for n in names), m
        assert any(n.startswith(m + '_') and n.endswith('_toy.py') for n in names), m


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.basename(p)[:-3])
def test_config_trains_one_step(path):
    init_default_scope('mmdet')
    cfg = Config.fromfile(path)
    cfg.model.teacher_ckpt = None  # nothing to download; the toy teacher may not be trained
    for side in ('architecture', 'teacher'):  # nor ImageNet weights
        cfg.model[side].backbone = dict(cfg.model[side].get('backbone', {}), init_cfg=None)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    before = {k: v.clone() for k, v in model.student.state_dict().items()}
    losses = model.train_step(tiny_batch(model, num_images=2, size=96), optim_wrapper)
    distill = {k: v for k, v in losses.items() if k.startswith('distill.')}
    assert distill, 'no distillation loss was computed'
    expected = set(cfg.model.distiller.distill_losses)
    logged = {k[len('distill.'):] for k in distill}
    assert all(any(k == e or k.startswith(e + '_') for k in logged) for e in expected)
    assert all(torch.isfinite(v) for v in losses.values()), losses
    changed = [k for k, v in model.student.state_dict().items()
               if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert changed, 'the optimizer step did not change the student'
