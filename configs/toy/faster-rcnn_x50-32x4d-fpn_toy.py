# Teacher on Toy Shapes: the mmdet zoo Faster R-CNN X101-32x4d teacher config with depth 50 for
# CPU time, the toy data and a longer schedule than the students (a teacher should beat them).
_base_ = ['mmdet::faster_rcnn/faster-rcnn_x101-32x4d_fpn_1x_coco.py', './_base_/toy_shapes.py']
globals().update(_base_.toy_frcnn_teacher_run)
model = _base_.toy_frcnn_teacher
