# DeFeat (neck) on Toy Shapes: its COCO config (below) with the toy data,
# schedule and models (./_base_/toy_shapes.py), distilled from the toy teacher.
_base_ = ['../defeat/defeat_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py',
          './_base_/toy_shapes.py']
globals().update(_base_.toy_frcnn_run)  # 12 epochs
# the toy Faster R-CNN's FPN is 128 channels wide (COCO: 256): DeFeat's neck loss follows it
model = dict(_base_.toy_frcnn_distill, distiller=dict(distill_losses=dict(loss_defeat_neck=dict(
    student_channels=_base_.toy_frcnn_channels, teacher_channels=_base_.toy_frcnn_channels))))
