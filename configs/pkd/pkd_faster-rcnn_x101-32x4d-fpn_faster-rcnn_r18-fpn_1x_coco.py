# PKD (Cao et al., NeurIPS 2022) on Faster R-CNN: FPN levels P2-P5 (neck outputs 0-3), weight 6
# as mmrazor's pkd_fpn_faster-rcnn_r101_faster-rcnn_r50_2x_coco.py. The distiller is PKD's
# pieces (../_base_/distillers/pkd.py).
_base_ = [
    '../_base_/distill/faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py',
    '../_base_/distillers/pkd.py'
]
model = dict(distiller=_base_.pkd_two_stage_distiller)
