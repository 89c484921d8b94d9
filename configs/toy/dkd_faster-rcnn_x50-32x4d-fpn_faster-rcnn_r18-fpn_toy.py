# DKD on Toy Shapes: configs/dkd/dkd_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py
# with the toy data, image size and schedule, and the toy teacher (ResNeXt-50 for CPU time)
# trained by tools/toy_main_job.py.
_base_ = [
    '../dkd/dkd_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py',
    './_base_/toy_shapes.py',
    './_base_/toy_two_stage.py'
]
num_classes = len(_base_.toy_classes)
model = dict(
    architecture=dict(
        **_base_.toy_rpn_rcnn,
        backbone=_base_.toy_backbone,
        roi_head=dict(bbox_head=dict(num_classes=num_classes))),
    teacher=dict(
        **_base_.toy_rpn_rcnn,
        backbone=dict(depth=50, **_base_.toy_backbone),
        roi_head=dict(bbox_head=dict(num_classes=num_classes))),
    teacher_ckpt='work_dirs/toy/teacher_faster-rcnn_x50-32x4d_fpn_toy.pth')

train_dataloader = _base_.toy_train_dataloader
val_dataloader = _base_.toy_val_dataloader
test_dataloader = val_dataloader
val_evaluator = _base_.toy_val_evaluator
test_evaluator = val_evaluator
train_cfg = _base_.toy_train_cfg
param_scheduler = _base_.toy_param_scheduler
optim_wrapper = _base_.toy_optim_wrapper
default_hooks = _base_.toy_default_hooks
