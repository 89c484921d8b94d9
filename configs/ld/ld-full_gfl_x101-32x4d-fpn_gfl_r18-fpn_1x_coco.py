# LD (Zheng et al., CVPR 2022), the official "full" setting: Main KD (class logits, weight 10,
# T 2) + Main LD (box distributions on the ATSS positives, 0.25, T 10) + VLR LD (box
# distributions on the valuable localisation region, 0.25, T 10), the defaults of LD's LDHead
# (HikariTJU/LD configs/ld/ld_r18_gflv1_r101_fpn_coco_1x.py).
_base_ = ['./ld_gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py']

model = dict(
    distiller=dict(
        distill_losses=dict(
            loss_ld=dict(
                loss_kd=dict(type='mmkd.KDLoss', tau=2.0, loss_weight=10.0),
                loss_ld_vlr=dict(type='mmkd.LDLoss', tau=10.0, loss_weight=0.25),
                with_main_kd=True,
                with_vlr=True))))
