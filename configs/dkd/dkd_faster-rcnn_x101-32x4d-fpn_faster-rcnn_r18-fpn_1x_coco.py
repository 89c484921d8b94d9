# DKD (Zhao et al., CVPR 2022) on Faster R-CNN: decoupled KD (TCKD + NCKD) of the RoI-head class
# logits (80 classes + background). Student and teacher RoI heads run on the same RoIs: the
# student's sampled proposals, each model pooling from its own FPN. alpha 1, beta 0.25, T 1:
# mdistiller's detection defaults (detection/model/config.py). The distiller is DKD's pieces
# (../_base_/distillers/dkd.py).
_base_ = [
    '../_base_/distill/faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py',
    '../_base_/distillers/dkd.py'
]
model = dict(distiller=_base_.dkd_distiller)
