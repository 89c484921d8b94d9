# GFL's teacher on Toy Shapes: the baseline student's model (GFL R18, ./gfl_r18-fpn_toy.py)
# trained 2.5x as long (20 epochs, clipped at 35), so that it beats the students it teaches; the
# COCO pair's ResNeXt teacher learns too slowly from scratch on 320 images (./_base_/toy_shapes.py).
_base_ = ['./gfl_r18-fpn_toy.py']
globals().update(_base_.toy_gfl_teacher_run)
