# PKD on GFL, 2x (24 epochs, steps 16/22) as mmrazor's one-stage
# pkd_fpn_retina_x101_retina_r50_2x_coco.py, which gives the published RetinaNet number;
# otherwise the 1x config. Baseline: configs/detectors/gfl_r18-fpn_2x_coco.py.
_base_ = './pkd_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py'
train_cfg = dict(max_epochs=24)
param_scheduler = [  # mmdet's schedule_2x: steps at epochs 16 and 22
    _base_.param_scheduler[0],
    dict(_base_.param_scheduler[1], end=24, milestones=[16, 22])
]
