# FGD (Yang et al., CVPR 2022) on GFL: focal (fg/bg, attention-weighted), attention and global
# (GcBlock relation) distillation on every FPN level P3-P7, with the official one-stage weights
# and set-up (yzd-v/FGD configs/distillers/fgd/fgd_gfl_r101_distill_gfl_r50_fpn_1x_coco.py):
# temp 0.5, alpha 1e-3, beta 5e-4, gamma 5e-4, lambda 5e-6, the inheriting strategy
# (init_student=True: every non-backbone weight of the teacher whose shape fits) and gradient
# clipping at 35.
_base_ = ['../_base_/distill/gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py']

fpn_levels = [0, 1, 2, 3, 4]
fgd = dict(type='mmkd.FGDLoss', student_channels=256, teacher_channels=256, temp=0.5,
           alpha_fgd=1e-3, beta_fgd=5e-4, gamma_fgd=5e-4, lambda_fgd=5e-6)
model = dict(
    inherit_from_teacher='non_backbone',
    distiller=dict(
        student_recorders=dict(
            fpn=dict(type='mmrazor.ModuleOutputs', source='neck'),
            gt=dict(type='mmkd.BatchData', source='batch_gt_instances'),
            metas=dict(type='mmkd.BatchData', source='batch_img_metas')),
        teacher_recorders=dict(fpn=dict(type='mmrazor.ModuleOutputs', source='neck')),
        distill_losses={f'loss_fgd_fpn{i}': fgd for i in fpn_levels},
        loss_forward_mappings={
            f'loss_fgd_fpn{i}': dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=i),
                batch_gt_instances=dict(from_student=True, recorder='gt'),
                batch_img_metas=dict(from_student=True, recorder='metas'))
            for i in fpn_levels
        }))
# gradient clipping as the official config (L96); its baseline:
# configs/detectors/gfl_r18-fpn_clip-grad-35_1x_coco.py
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
