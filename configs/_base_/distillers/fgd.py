# FGD (Yang et al., CVPR 2022): the pieces of `model.distiller` as named variables, which a
# method config merges (`model = dict(distiller=_base_.fgd_distiller)`) and so can a config of
# another method (README, "Compose methods"). Focal (fg/bg, attention-weighted), attention and
# global (GcBlock relation) distillation of FPN levels (neck outputs), one loss per level, logged
# as loss_fgd_fpn{i}; the loss builds its masks from the GT boxes and image metas.


def _fgd(levels, **weights):
    fgd = dict(type='mmkd.FGDLoss', student_channels=256, teacher_channels=256, temp=0.5,
               **weights)
    return dict(
        student_recorders=dict(
            fpn=dict(type='mmrazor.ModuleOutputs', source='neck'),
            gt=dict(type='mmkd.BatchData', source='batch_gt_instances'),
            metas=dict(type='mmkd.BatchData', source='batch_img_metas')),
        teacher_recorders=dict(fpn=dict(type='mmrazor.ModuleOutputs', source='neck')),
        distill_losses={f'loss_fgd_fpn{i}': fgd for i in levels},
        loss_forward_mappings={
            f'loss_fgd_fpn{i}': dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=i),
                batch_gt_instances=dict(from_student=True, recorder='gt'),
                batch_img_metas=dict(from_student=True, recorder='metas'))
            for i in levels
        })


# every neck output (P3-P7), temp 0.5 and the one-stage weights of the official GFL config
# (yzd-v/FGD configs/distillers/fgd/fgd_gfl_r101_distill_gfl_r50_fpn_1x_coco.py)
fgd_distiller = _fgd([0, 1, 2, 3, 4], alpha_fgd=1e-3, beta_fgd=5e-4, gamma_fgd=5e-4,
                     lambda_fgd=5e-6)
# neck outputs 0-3 (P2-P5, the official two-stage configs hook neck.fpn_convs.0-3), temp 0.5 and
# the weights of fgd_faster_rcnn_r101_fpn_2x_distill_faster_rcnn_r50_fpn_2x_coco.py
fgd_two_stage_distiller = _fgd([0, 1, 2, 3], alpha_fgd=5e-5, beta_fgd=2.5e-5, gamma_fgd=5e-5,
                               lambda_fgd=5e-7)
