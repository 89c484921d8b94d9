# FGD (Yang et al., CVPR 2022) on GFL: focal (fg/bg, attention-weighted), attention and global
# (GcBlock relation) distillation on every FPN level P3-P7, with the official one-stage weights
# and set-up (yzd-v/FGD configs/distillers/fgd/fgd_gfl_r101_distill_gfl_r50_fpn_1x_coco.py):
# temp 0.5, alpha 1e-3, beta 5e-4, gamma 5e-4, lambda 5e-6, the inheriting strategy
# (init_student=True: every non-backbone weight of the teacher whose shape fits) and gradient
# clipping at 35. The distiller is FGD's pieces (../_base_/distillers/fgd.py).
_base_ = [
    '../_base_/distill/gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py', '../_base_/distillers/fgd.py'
]
model = dict(inherit_from_teacher='non_backbone', distiller=_base_.fgd_distiller)
# gradient clipping as the official config (L96); its baseline:
# configs/detectors/gfl_r18-fpn_clip-grad-35_1x_coco.py
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
