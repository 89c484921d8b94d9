# ReviewKD on Toy Shapes: its COCO config (below) with the toy data,
# schedule and models (./_base_/toy_shapes.py), distilled from the toy teacher.
_base_ = ['../reviewkd/reviewkd_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py',
          './_base_/toy_shapes.py']
globals().update(_base_.toy_frcnn_run)  # 12 epochs
# the toy Faster R-CNN's FPN is 128 channels wide (COCO: 256): ReviewKD's connector follows it
model = dict(_base_.toy_frcnn_distill, distiller=dict(connectors=dict(review=dict(
    in_channels=_base_.toy_frcnn_channels, out_channels=_base_.toy_frcnn_channels,
    mid_channels=_base_.toy_frcnn_channels))))
