# Distillation set-up shared by the two-stage configs: Faster R-CNN ResNeXt-101 (32x4d) FPN teacher
# (mmdet zoo faster-rcnn_x101-32x4d_fpn_1x_coco, box AP 41.2) -> Faster R-CNN ResNet-18 FPN
# student (its baseline: configs/detectors/faster-rcnn_r18-fpn_1x_coco.py), COCO, 1x.
_base_ = './coco_1x.py'
model = dict(
    architecture=dict(cfg_path='configs/detectors/faster-rcnn_r18-fpn_1x_coco.py'),
    teacher=dict(cfg_path='mmdet::faster_rcnn/faster-rcnn_x101-32x4d_fpn_1x_coco.py'),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/faster_rcnn/faster_rcnn_x101_32x4d_fpn_1x_coco/faster_rcnn_x101_32x4d_fpn_1x_coco_20200203-cff10310.pth')  # noqa
optim_wrapper = dict(optimizer=dict(lr=0.02))
