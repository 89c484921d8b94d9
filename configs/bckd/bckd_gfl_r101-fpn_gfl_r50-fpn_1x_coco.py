# BCKD (Yang et al., ICCV 2023), the published pair: GFL R101 ms-2x teacher -> GFL R50, 1x, 8x2,
# lr 0.01, no gradient clipping, as TinyTigerPan/BCKD
# configs/bckd/bckd_r50_gflv1_r101_fpn_coco_1x.py (43.2 box AP). The distiller is BCKD's pieces
# (../_base_/distillers/bckd.py).
_base_ = ['../_base_/distill/gfl_r101-fpn_gfl_r50-fpn_1x_coco.py', '../_base_/distillers/bckd.py']
model = dict(distiller=_base_.bckd_distiller)
