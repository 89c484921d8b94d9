# gfl_x101-32x4d_fpn trained alone on COCO (1x): the baseline / teacher without distillation.
_base_ = [
    '../_base_/models/gfl_x101-32x4d_fpn.py', '../_base_/datasets/coco_detection.py',
    '../_base_/schedules/schedule_1x.py', '../_base_/default_runtime.py'
]
optim_wrapper = dict(optimizer=dict(lr=0.01))
