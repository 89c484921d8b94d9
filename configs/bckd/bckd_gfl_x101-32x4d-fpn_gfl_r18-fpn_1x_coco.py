# BCKD (Yang et al., ICCV 2023) on the GFL X101-32x4d -> R18 pair of the other GFL configs: the
# settings of the published R101 -> R50 config (bckd_gfl_r101-fpn_gfl_r50-fpn_1x_coco.py).
_base_ = [
    '../_base_/distill/gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py', '../_base_/distillers/bckd.py'
]
model = dict(distiller=_base_.bckd_distiller)
