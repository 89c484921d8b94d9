# PKD (Cao et al., NeurIPS 2022): Pearson-correlation imitation of FPN levels P3-P6
# (neck outputs 0-3; P7 is not distilled, as in all of mmrazor's PKD configs). Weight 10 as in
# mmrazor's one-stage configs (pkd_fpn_retina_x101_retina_r50_2x_coco.py).
_base_ = ['../_base_/distill/gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py']

fpn_levels = [0, 1, 2, 3]
model = dict(
    distiller=dict(
        student_recorders=dict(fpn=dict(type='mmrazor.ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='mmrazor.ModuleOutputs', source='neck')),
        distill_losses={
            f'loss_pkd_fpn{i}': dict(type='mmkd.PKDLoss', loss_weight=10)
            for i in fpn_levels
        },
        loss_forward_mappings={
            f'loss_pkd_fpn{i}': dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
            for i in fpn_levels
        }))
