# ReviewKD + DKD on Faster R-CNN, the DKD paper's best detection result: mdistiller's ReviewDKD
# (megvii-research/mdistiller detection/configs/DKD/ReviewDKD-R18-R101.yaml L25-28, ReviewKD
# weight 1.2 with DKD's defaults alpha 1, beta 0.25, T 1; detection/model/rcnn.py L217-230, the
# two losses added). The ReviewKD config with DKD's pieces merged into its distiller.
_base_ = [
    './reviewkd_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py',
    '../_base_/distillers/dkd.py'
]
model = dict(distiller=_base_.dkd_distiller)
