# FGD (Yang et al., CVPR 2022) on Faster R-CNN: FPN levels P2-P5 (the official two-stage configs
# hook neck.fpn_convs.0-3), with the official same-architecture two-stage set-up (yzd-v/FGD
# configs/distillers/fgd/fgd_faster_rcnn_r101_fpn_2x_distill_faster_rcnn_r50_fpn_2x_coco.py):
# temp 0.5, alpha 5e-5, beta 2.5e-5, gamma 5e-5, lambda 5e-7, the inheriting strategy
# (init_student=True) and gradient clipping at 35. That config trains 2x: see the _2x_ config.
# The distiller is FGD's two-stage pieces (../_base_/distillers/fgd.py).
_base_ = [
    '../_base_/distill/faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py',
    '../_base_/distillers/fgd.py'
]
model = dict(inherit_from_teacher='non_backbone', distiller=_base_.fgd_two_stage_distiller)
# gradient clipping as the official config (L82); its baseline:
# configs/detectors/faster-rcnn_r18-fpn_clip-grad-35_1x_coco.py
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
