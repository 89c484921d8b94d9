# Teacher on Toy Shapes: the Faster R-CNN ResNeXt-101 (32x4d) teacher config with depth 50 for
# CPU time, the toy data, image size and a longer schedule (a teacher should beat the student).
_base_ = ['../detectors/faster-rcnn_x101-32x4d_fpn_1x_coco.py', './_base_/toy_shapes.py',
    './_base_/toy_two_stage.py']
model = dict(
    **_base_.toy_rpn_rcnn,
    backbone=dict(depth=50, **_base_.toy_backbone),
    roi_head=dict(bbox_head=dict(num_classes=len(_base_.toy_classes))))

train_dataloader = _base_.toy_train_dataloader
val_dataloader = _base_.toy_val_dataloader
test_dataloader = val_dataloader
val_evaluator = _base_.toy_val_evaluator
test_evaluator = val_evaluator
teacher_epochs = 10
train_cfg = dict(_base_.toy_train_cfg, max_epochs=teacher_epochs, val_interval=teacher_epochs)
param_scheduler = [
    _base_.toy_param_scheduler[0],
    dict(_base_.toy_param_scheduler[1], end=teacher_epochs)
]
optim_wrapper = _base_.toy_optim_wrapper
default_hooks = dict(_base_.toy_default_hooks, checkpoint=dict(interval=teacher_epochs))
