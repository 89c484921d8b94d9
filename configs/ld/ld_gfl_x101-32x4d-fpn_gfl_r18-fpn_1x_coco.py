# LD (Zheng et al., CVPR 2022), Main LD only: KL between the GFL box distributions of student and
# teacher on the student's ATSS positives (weight 0.25, T 10), as mmdet's
# configs/ld/ld_r18-gflv1-r101_fpn_1x_coco.py. The "full" LD (+ Main KD + VLR LD) is
# ld-full_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py. The distiller is LD's pieces
# (../_base_/distillers/ld.py).
_base_ = [
    '../_base_/distill/gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py', '../_base_/distillers/ld.py'
]
model = dict(distiller=_base_.ld_distiller)
