# PKD (Cao et al., NeurIPS 2022): Pearson-correlation imitation of FPN levels P3-P6
# (neck outputs 0-3; P7 is not distilled, as in all of mmrazor's PKD configs). Weight 10 as in
# mmrazor's one-stage configs (pkd_fpn_retina_x101_retina_r50_2x_coco.py). The distiller is
# PKD's pieces (../_base_/distillers/pkd.py).
_base_ = [
    '../_base_/distill/gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py', '../_base_/distillers/pkd.py'
]
model = dict(distiller=_base_.pkd_distiller)
