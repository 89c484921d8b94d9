# Teacher on Toy Shapes: the mmdet zoo GFL X101-32x4d teacher config with depth 50 for CPU time,
# the toy data and a longer schedule than the students (a teacher should beat them).
_base_ = ['mmdet::gfl/gfl_x101-32x4d_fpn_ms-2x_coco.py', './_base_/toy_shapes.py']
globals().update(_base_.toy_teacher_run)
model = _base_.toy_gfl_teacher
