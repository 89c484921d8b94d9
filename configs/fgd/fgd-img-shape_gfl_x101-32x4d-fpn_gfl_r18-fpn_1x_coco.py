# FGD on GFL with the official box-to-feature scaling: boxes are mapped to each FPN level with
# the image's own un-padded img_shape (yzd-v/FGD mmdet/distillation/losses/fgd.py L83-106), which
# stretches the masks of images smaller than the batch pad; mmkd's default maps them with the
# padded batch shape, which is what the feature map covers. Otherwise the 1x config. Baseline:
# configs/detectors/gfl_r18-fpn_clip-grad-35_1x_coco.py.
_base_ = './fgd_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py'
model = dict(distiller=dict(distill_losses={
    name: dict(box_scale='img_shape')
    for name in _base_.fgd_distiller.distill_losses
}))
