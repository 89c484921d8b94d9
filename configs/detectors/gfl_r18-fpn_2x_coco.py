# gfl_r18-fpn_1x_coco.py trained 2x (24 epochs, steps 16/22):
# the baseline of the 2x distillation configs with the same optimizer settings.
_base_ = './gfl_r18-fpn_1x_coco.py'
train_cfg = dict(max_epochs=24)
param_scheduler = [  # mmdet's schedule_2x: steps at epochs 16 and 22
    _base_.param_scheduler[0],
    dict(_base_.param_scheduler[1], end=24, milestones=[16, 22])
]
