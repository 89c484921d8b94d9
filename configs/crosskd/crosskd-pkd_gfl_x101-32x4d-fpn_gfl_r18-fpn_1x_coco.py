# CrossKD + PKD on the GFL X101-32x4d -> R18 pair: the settings of the published combination
# (crosskd-pkd_gfl_r101-fpn_gfl_r50-fpn_1x_coco.py), CrossKD with PKD on every FPN level at 6.
_base_ = ['./crosskd_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py', '../_base_/distillers/pkd.py']
model = dict(distiller=_base_.pkd_all_levels_distiller)
