# GFL (Li et al., NeurIPS 2020) with a ResNet-50 FPN, trained alone on COCO (1x, 8x2, lr 0.01, no
# gradient clipping): the student of the published GFL R101 -> R50 distillation pairs (CrossKD,
# BCKD) and their baseline. mmdet's own config, unchanged (mmdet zoo: 40.2 box AP).
_base_ = 'mmdet::gfl/gfl_r50_fpn_1x_coco.py'
