# DeFeat (Guo et al., CVPR 2021), neck decoupled features on Faster R-CNN: every GT is imitated on
# one FPN level (P2-P6) through a 3x3 adaptation conv, foreground and background separately;
# weights fg 4 / bg 16, the author's advice for COCO (DeFeat issue #18; the released VOC config
# uses 3 / 12). defeat-full_* adds the RoI-head term. The distiller is DeFeat's pieces
# (../_base_/distillers/defeat.py).
_base_ = [
    '../_base_/distill/faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py',
    '../_base_/distillers/defeat.py'
]
model = dict(distiller=_base_.defeat_distiller)
# gradient clipping as the released config (ggjy/DeFeat.pytorch configs/kd_faster_rcnn/
# voc_stu_faster_rcnn_r50_decouple_neck.py L183); its baseline:
# configs/detectors/faster-rcnn_r18-fpn_clip-grad-35_1x_coco.py
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
