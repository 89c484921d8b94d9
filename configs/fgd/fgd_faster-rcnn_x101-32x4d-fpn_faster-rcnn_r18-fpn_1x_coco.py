# FGD (Yang et al., CVPR 2022) on Faster R-CNN: FPN levels P2-P5 (the official two-stage configs
# hook neck.fpn_convs.0-3), with the official same-architecture two-stage set-up (yzd-v/FGD
# configs/distillers/fgd/fgd_faster_rcnn_r101_fpn_2x_distill_faster_rcnn_r50_fpn_2x_coco.py):
# temp 0.5, alpha 5e-5, beta 2.5e-5, gamma 5e-5, lambda 5e-7, the inheriting strategy
# (init_student=True) and gradient clipping at 35. That config trains 2x: see the _2x_ config.
_base_ = ['../_base_/distill/faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py']

fpn_levels = [0, 1, 2, 3]
fgd = dict(type='mmkd.FGDLoss', student_channels=256, teacher_channels=256, temp=0.5,
           alpha_fgd=5e-5, beta_fgd=2.5e-5, gamma_fgd=5e-5, lambda_fgd=5e-7)
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
# gradient clipping as the official config (L82); its baseline:
# configs/detectors/faster-rcnn_r18-fpn_clip-grad-35_1x_coco.py
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
