# Baseline student on Toy Shapes: Faster R-CNN R18
# (configs/detectors/faster-rcnn_r18_fpn_1x_coco.py) with the toy data, image size and schedule.
_base_ = ['../detectors/faster-rcnn_r18_fpn_1x_coco.py', './_base_/toy_shapes.py',
    './_base_/toy_two_stage.py']
model = dict(
    **_base_.toy_rpn_rcnn,
    backbone=_base_.toy_backbone,
    roi_head=dict(bbox_head=dict(num_classes=len(_base_.toy_classes))))

train_dataloader = _base_.toy_train_dataloader
val_dataloader = _base_.toy_val_dataloader
test_dataloader = val_dataloader
val_evaluator = _base_.toy_val_evaluator
test_evaluator = val_evaluator
train_cfg = _base_.toy_train_cfg
param_scheduler = _base_.toy_param_scheduler
optim_wrapper = _base_.toy_optim_wrapper
default_hooks = _base_.toy_default_hooks
