# PKD (Cao et al., NeurIPS 2022): the pieces of `model.distiller` as named variables, which a
# method config merges (`model = dict(distiller=_base_.pkd_distiller)`) and so can a config of
# another method (README, "Compose methods"). Pearson-correlation imitation of FPN levels (neck
# outputs), one loss per level, logged as loss_pkd_fpn{i}.


def _pkd(levels, weight):
    return dict(
        student_recorders=dict(fpn=dict(type='mmrazor.ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='mmrazor.ModuleOutputs', source='neck')),
        distill_losses={
            f'loss_pkd_fpn{i}': dict(type='mmkd.PKDLoss', loss_weight=weight)
            for i in levels
        },
        loss_forward_mappings={
            f'loss_pkd_fpn{i}': dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
            for i in levels
        })


# neck outputs 0-3 (P3-P6 one-stage, P2-P5 two-stage): the last level is never distilled in
# mmrazor's PKD configs; weight 10 as its one-stage ones (pkd_fpn_retina_x101_retina_r50_2x_coco.py)
pkd_distiller = _pkd([0, 1, 2, 3], 10)
# weight 6 as mmrazor's pkd_fpn_faster-rcnn_r101_faster-rcnn_r50_2x_coco.py
pkd_two_stage_distiller = _pkd([0, 1, 2, 3], 6)
# every neck output (P3-P7) at weight 6: PKD as CrossKD adds it (jbwang1997/CrossKD
# configs/crosskd+pkd/crosskd+pkd_r50_gflv1_r101-2x-ms_fpn_1x_coco.py L60, one PKDLoss per level)
pkd_all_levels_distiller = _pkd([0, 1, 2, 3, 4], 6)
