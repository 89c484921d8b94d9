# CWD (Shu et al., ICCV 2021): channel-wise KL of the spatial softmax of every FPN level
# (neck outputs P3-P7), tau 1, weight 10 per level as mmrazor 1.x's GFL/RetinaNet CWD configs
# (cwd_fpn_retina_r101_retina_r50_1x_coco.py). The distiller is CWD's pieces
# (../_base_/distillers/cwd.py).
_base_ = [
    '../_base_/distill/gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py', '../_base_/distillers/cwd.py'
]
model = dict(distiller=_base_.cwd_distiller)
