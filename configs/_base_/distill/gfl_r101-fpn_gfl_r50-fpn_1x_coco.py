# Distillation set-up of the published GFL results (CrossKD, BCKD, LD): GFL ResNet-101 FPN teacher
# (mmdet zoo gfl_r101_fpn_ms-2x_coco, box AP 44.7; the checkpoint of CrossKD's and BCKD's configs)
# -> GFL ResNet-50 student (its baseline: configs/detectors/gfl_r50-fpn_1x_coco.py), COCO, 1x.
# Method configs add the distiller.
_base_ = './coco_1x.py'
model = dict(
    architecture=dict(cfg_path='configs/detectors/gfl_r50-fpn_1x_coco.py'),
    teacher=dict(cfg_path='mmdet::gfl/gfl_r101_fpn_ms-2x_coco.py'),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/gfl/gfl_r101_fpn_mstrain_2x_coco/gfl_r101_fpn_mstrain_2x_coco_20200629_200126-dd12f847.pth')  # noqa
optim_wrapper = dict(optimizer=dict(lr=0.01))
