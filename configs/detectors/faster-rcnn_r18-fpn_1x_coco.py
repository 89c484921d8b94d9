# Faster R-CNN (Ren et al., NeurIPS 2015) with a ResNet-18 FPN, trained alone on COCO (1x, 8x2,
# lr 0.02, no gradient clipping): the student of the two-stage distillation configs and their
# baseline. mmdet's faster-rcnn_r50_fpn_1x_coco.py with a ResNet-18 backbone.
_base_ = ['mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', '../_base_/datasets/checked_coco.py']
globals().update(_base_.checked_coco)  # mmkd.CheckedCocoDataset: bad GT boxes refused
model = dict(
    backbone=dict(depth=18, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18')),
    neck=dict(in_channels=[64, 128, 256, 512]))
