# MGD (Yang et al., ECCV 2022) on Faster R-CNN: masked generative distillation of FPN levels
# P2-P5 with the official two-stage settings (yzd-v/MGD det/configs/distillers/mgd/
# cascade_mask_rcnn_rx101_32x4d_distill_faster_rcnn_r50_fpn_2x_coco.py): alpha 5e-7, lambda
# (mask ratio) 0.45, gradient clipping at 35, and no inheriting (that config's Cascade Mask R-CNN
# teacher has other heads; MGD has no same-architecture two-stage config). It trains 2x: see the
# _2x_ config. The distiller is MGD's two-stage pieces (../_base_/distillers/mgd.py).
_base_ = [
    '../_base_/distill/faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py',
    '../_base_/distillers/mgd.py'
]
model = dict(distiller=_base_.mgd_two_stage_distiller)
# gradient clipping as the official config (L64); its baseline:
# configs/detectors/faster-rcnn_r18-fpn_clip-grad-35_1x_coco.py
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
