# CrossKD (Wang et al., CVPR 2024), the published pair: GFL R101 ms-2x teacher -> GFL R50, 1x,
# 8x2, lr 0.01, no gradient clipping, as jbwang1997/CrossKD
# configs/crosskd/crosskd_r50_gflv1_r101-2x-ms_fpn_1x_coco.py (43.7 box AP). The distiller is
# CrossKD's pieces (../_base_/distillers/crosskd.py).
_base_ = [
    '../_base_/distill/gfl_r101-fpn_gfl_r50-fpn_1x_coco.py', '../_base_/distillers/crosskd.py'
]
model = dict(distiller=_base_.crosskd_distiller)
