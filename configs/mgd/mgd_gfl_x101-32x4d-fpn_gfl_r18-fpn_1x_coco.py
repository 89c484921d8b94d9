# MGD (Yang et al., ECCV 2022) on GFL: masked generative distillation of FPN levels P3-P7 with
# the official one-stage settings (yzd-v/MGD det/configs/distillers/mgd/
# retina_rx101_64x4d_distill_retina_r50_fpn_2x_coco.py, RetinaNet; RepPoints the same): alpha
# 2e-5, lambda (mask ratio) 0.65, the inheriting strategy (init_student=True: every non-backbone
# weight of the teacher whose shape fits) and gradient clipping at 35. Those configs train 2x:
# see the _2x_ config. The distiller is MGD's pieces (../_base_/distillers/mgd.py).
_base_ = [
    '../_base_/distill/gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py', '../_base_/distillers/mgd.py'
]
model = dict(inherit_from_teacher='non_backbone', distiller=_base_.mgd_distiller)
# gradient clipping as the official config (L78); its baseline:
# configs/detectors/gfl_r18-fpn_clip-grad-35_1x_coco.py
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
