"""Small helpers shared by the tests: tiny toy configs and batches."""
import copy
import os.path as osp
import socket

import torch
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PKD_TOY = osp.join(REPO, 'configs/toy/pkd_gfl_r18-fpn-20e_gfl_r18-fpn_toy.py')
#: a GFL teacher of another backbone than the toy R18 students (the COCO pair's ResNeXt at
#: depth 50, from scratch) with the toy students' head (4 classes, 128 channels), for tests of
#: what differs between teacher and student
GFL_X50_TEACHER = dict(cfg_path='mmdet::gfl/gfl_x101-32x4d_fpn_ms-2x_coco.py',
                       backbone=dict(depth=50, init_cfg=None, frozen_stages=-1, norm_eval=False),
                       bbox_head=dict(num_classes=4, feat_channels=128))


def tiny_toy_cfg(config: str, data_root: str, num_train: int = 8, num_val: int = 4,
                 epochs: int = 1, batch_size: int = 2) -> Config:
    """A toy config shrunk for tests: its own small data set, short schedule, no teacher ckpt."""
    cfg = Config.fromfile(config)
    toy_cfg = dict(num_train=num_train, num_val=num_val)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root
        cfg[loader].dataset.toy_cfg = toy_cfg
        cfg[loader].batch_size = batch_size
    cfg.val_evaluator.ann_file = osp.join(data_root, 'annotations/instances_val.json')
    cfg.test_evaluator = copy.deepcopy(cfg.val_evaluator)
    cfg.train_cfg.max_epochs = epochs
    cfg.train_cfg.val_interval = epochs
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True)]
    cfg.default_hooks.checkpoint.interval = 1
    cfg.default_hooks.logger.interval = 1
    if 'teacher_ckpt' in cfg.model:
        cfg.model.teacher_ckpt = None
        cfg.teacher_check = None  # random teachers: the check would (rightly) stop them
    return cfg


def tiny_batch(model, num_images: int = 2, size: int = 64, seed: int = 0):
    """A preprocessed batch of random images with two boxes each (and one without any)."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    g = torch.Generator().manual_seed(seed)
    samples = []
    for i in range(num_images):
        s = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size),
                                        pad_shape=(size, size), scale_factor=(1.0, 1.0)))
        n = 0 if i == num_images - 1 and num_images > 2 else 2
        xy = torch.rand(n, 2, generator=g) * size * 0.5
        wh = torch.rand(n, 2, generator=g) * size * 0.4 + 8
        s.gt_instances = InstanceData(bboxes=torch.cat([xy, xy + wh], 1),
                                      labels=torch.randint(0, 4, (n, ), generator=g))
        samples.append(s)
    inputs = [torch.randint(0, 255, (3, size, size), generator=g).float() for _ in samples]
    return model.data_preprocessor(dict(inputs=inputs, data_samples=samples), True)


def run_failure_output(out: str, tail: int = 4000) -> str:
    """What an assertion shows of a failed multi-process run: everything from the first
    fatal-signal report of a rank (torch prints the C++ stack of each of its threads, then
    faulthandler the Python ones; see mmkd/engine/cpu_distributed.py), else the last lines."""
    import re
    report = re.search(r'SIG[A-Z]+\(\d+\), PID: ', out)
    return out[report.start():] if report else out[-tail:]


def free_port() -> int:
    """A TCP port free on this machine now, for a test's torchrun master."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
