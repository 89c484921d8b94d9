# GFL (Li et al., NeurIPS 2020) with a ResNet-18 FPN, trained alone on COCO (1x, 8x2, lr 0.01, no
# gradient clipping): the student of the GFL distillation configs and their baseline. mmdet's
# gfl_r50_fpn_1x_coco.py with the backbone of mmdet's configs/ld/ld_r18-gflv1-r101_fpn_1x_coco.py.
_base_ = ['mmdet::gfl/gfl_r50_fpn_1x_coco.py', '../_base_/datasets/checked_coco.py']
globals().update(_base_.checked_coco)  # mmkd.CheckedCocoDataset: bad GT boxes refused
model = dict(
    backbone=dict(depth=18, init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18')),
    neck=dict(in_channels=[64, 128, 256, 512]))
