# GFL (Li et al., NeurIPS 2020) with a ResNet-50 FPN, trained alone on COCO (1x, 8x2, lr 0.01, no
# gradient clipping): the student of the published GFL R101 -> R50 distillation pairs (CrossKD,
# BCKD) and their baseline. mmdet's own config (mmdet zoo: 40.2 box AP), read through mmkd's
# checked data set like every COCO config here.
_base_ = ['mmdet::gfl/gfl_r50_fpn_1x_coco.py', '../_base_/datasets/checked_coco.py']
globals().update(_base_.checked_coco)  # mmkd.CheckedCocoDataset: bad GT boxes refused
