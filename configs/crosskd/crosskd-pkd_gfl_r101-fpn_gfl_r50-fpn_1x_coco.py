# CrossKD + PKD, the published combination (jbwang1997/CrossKD
# configs/crosskd+pkd/crosskd+pkd_r50_gflv1_r101-2x-ms_fpn_1x_coco.py, 43.9 box AP): the CrossKD
# config with PKD's pieces merged into its distiller, PKD on every FPN level (P3-P7) at weight 6
# as there (L60).
_base_ = ['./crosskd_gfl_r101-fpn_gfl_r50-fpn_1x_coco.py', '../_base_/distillers/pkd.py']
model = dict(distiller=_base_.pkd_all_levels_distiller)
