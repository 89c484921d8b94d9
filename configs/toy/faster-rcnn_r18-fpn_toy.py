# Baseline student on Toy Shapes: the COCO config (below) with the toy data, schedule
# and model changes of the distilled toy students, trained alone.
_base_ = ['../detectors/faster-rcnn_r18-fpn_1x_coco.py', './_base_/toy_shapes.py']
globals().update(_base_.toy_frcnn_run)  # 12 epochs
model = _base_.toy_frcnn
