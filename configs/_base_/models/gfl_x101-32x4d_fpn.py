# GFL with a ResNeXt-101 (32x4d) FPN: the one-stage teacher of the plan (mmdet zoo
# gfl_x101-32x4d_fpn_ms-2x_coco, box AP 45.9, checkpoint below).
_base_ = './gfl_r18_fpn.py'
model = dict(
    backbone=dict(
        type='ResNeXt',
        depth=101,
        groups=32,
        base_width=4,
        init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnext101_32x4d')),
    neck=dict(in_channels=[256, 512, 1024, 2048]))
