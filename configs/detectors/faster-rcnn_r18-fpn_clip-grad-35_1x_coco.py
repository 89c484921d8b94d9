# The Faster R-CNN R18 baseline with gradient clipping at 35: the baseline of the distillation
# configs that clip (FGD, MGD, DeFeat), so that the two differ in the distillation only.
_base_ = './faster-rcnn_r18-fpn_1x_coco.py'
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
