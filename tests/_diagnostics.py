"""Tiny GFL runs for the diagnostics tests: a narrow ResNet-18 GFL that learns a few toy images
in seconds, as a trained teacher (for the teacher check) and as the student of a PKD run."""
import copy
import glob
import json
import os.path as osp

from mmengine.config import Config

from _toy import PKD_TOY, REPO, tiny_toy_cfg

GFL_TOY = osp.join(REPO, 'configs/toy/gfl_r18-fpn_toy.py')
#: a ResNet-18 of a quarter of the width, FPN and head at 64 channels, 2 head convs
TINY_GFL = dict(
    backbone=dict(base_channels=16),
    neck=dict(in_channels=[16, 32, 64, 128], out_channels=64),
    bbox_head=dict(in_channels=64, feat_channels=64, stacked_convs=2))


def _merge(model_cfg, overrides):
    return Config._merge_a_into_b(copy.deepcopy(overrides), model_cfg)


def _same_images(cfg: Config, root: str) -> None:
    """Validate on the training images, without the random flip: a tiny model learns them."""
    for loader in ('val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.ann_file = 'annotations/instances_train.json'
    cfg.val_evaluator.ann_file = osp.join(root, 'annotations/instances_train.json')
    cfg.test_evaluator = copy.deepcopy(cfg.val_evaluator)
    pipeline = cfg.train_dataloader.dataset.pipeline
    cfg.train_dataloader.dataset.pipeline = [p for p in pipeline if p.type != 'RandomFlip']
    cfg.train_dataloader.dataset.filter_cfg = None


def tiny_teacher_cfg(root: str, num_images: int = 8, epochs: int = 20) -> Config:
    """The tiny GFL trained alone on ``num_images`` toy images (batch 4, lr 0.02, clipped)."""
    data = osp.join(root, 'data')
    cfg = tiny_toy_cfg(GFL_TOY, data, num_train=num_images, num_val=num_images, epochs=epochs,
                       batch_size=4)
    cfg.model = _merge(cfg.model, TINY_GFL)
    _same_images(cfg, data)
    cfg.optim_wrapper.optimizer.lr = 0.02  # its own recipe, not the toy set's
    cfg.optim_wrapper.clip_grad = dict(max_norm=35)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
                                end=20)]
    cfg.train_cfg.val_interval = epochs
    cfg.default_hooks.checkpoint.interval = epochs
    cfg.default_hooks.logger.interval = 10
    cfg.randomness = dict(seed=0)
    cfg.work_dir = osp.join(root, 'teacher')
    return cfg


def tiny_distill_cfg(root: str, num_images: int = 8, epochs: int = 1, batch_size: int = 4,
                     teacher_ckpt=None) -> Config:
    """PKD from a tiny GFL teacher into the same tiny GFL, on the teacher's training images."""
    data = osp.join(root, 'data')
    cfg = tiny_toy_cfg(PKD_TOY, data, num_train=num_images, num_val=num_images, epochs=epochs,
                       batch_size=batch_size)
    cfg.model.architecture = _merge(cfg.model.architecture, TINY_GFL)
    cfg.model.teacher = copy.deepcopy(cfg.model.architecture)
    cfg.model.teacher_ckpt = teacher_ckpt
    _same_images(cfg, data)
    cfg.randomness = dict(seed=0)
    return cfg


def fresh_names(cfg: Config, tag: str) -> Config:
    """Own experiment and visualizer names: mmengine shares a visualizer (and its log files)
    between in-process runners of the same name."""
    cfg.experiment_name = tag
    cfg.visualizer.name = f'visualizer_{tag}'
    return cfg


def json_log(work_dir: str) -> list:
    """The training and validation lines of the run's mmengine JSON log (``scalars.json``)."""
    (path, ) = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
