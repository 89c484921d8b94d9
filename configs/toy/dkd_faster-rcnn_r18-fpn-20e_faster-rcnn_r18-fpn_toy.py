# DKD on Toy Shapes: its COCO config (below) with the toy data,
# schedule and models (./_base_/toy_shapes.py), distilled from the toy teacher.
_base_ = ['../dkd/dkd_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py',
          './_base_/toy_shapes.py']
globals().update(_base_.toy_frcnn_run)  # 12 epochs
model = _base_.toy_frcnn_distill
