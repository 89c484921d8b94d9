# ReviewKD (Chen et al., CVPR 2021) on Faster R-CNN: the student's FPN levels P2-P6 go through
# the review connector (attention-based fusion, coarse to fine) and are matched to the teacher's
# levels with the hierarchical context loss; weight 1.2 as the official R18 <- R101 config
# (dvlab-research/ReviewKD Detection/configs/ReviewKD-R18-R101.yaml). The distiller is
# ReviewKD's pieces (../_base_/distillers/reviewkd.py).
_base_ = [
    '../_base_/distill/faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py',
    '../_base_/distillers/reviewkd.py'
]
model = dict(distiller=_base_.reviewkd_distiller)
