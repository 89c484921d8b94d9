# Distillation set-up shared by the one-stage configs: GFL ResNeXt-101 (32x4d) teacher (mmdet zoo
# gfl_x101-32x4d_fpn_ms-2x_coco, box AP 45.9) -> GFL ResNet-18 student (its baseline:
# configs/detectors/gfl_r18-fpn_1x_coco.py), COCO, 1x. Method configs add the distiller.
_base_ = './coco_1x.py'
model = dict(
    architecture=dict(cfg_path='configs/detectors/gfl_r18-fpn_1x_coco.py'),
    teacher=dict(cfg_path='mmdet::gfl/gfl_x101-32x4d_fpn_ms-2x_coco.py'),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/gfl/gfl_x101_32x4d_fpn_mstrain_2x_coco/gfl_x101_32x4d_fpn_mstrain_2x_coco_20200630_102002-50c1ffdb.pth')  # noqa
optim_wrapper = dict(optimizer=dict(lr=0.01))
