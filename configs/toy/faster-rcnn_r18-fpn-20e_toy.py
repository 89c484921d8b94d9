# Faster R-CNN's teacher on Toy Shapes: the baseline student's model (Faster R-CNN R18,
# ./faster-rcnn_r18-fpn_toy.py) trained 20 epochs (1.67x the students' 12, clipped at 35), so that
# it beats the students it teaches; the COCO pair's ResNeXt teacher is too slow on CPU for the toy
# budgets (./_base_/toy_shapes.py).
_base_ = ['./faster-rcnn_r18-fpn_toy.py']
globals().update(_base_.toy_frcnn_teacher_run)
