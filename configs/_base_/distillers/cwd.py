# CWD (Shu et al., ICCV 2021): the pieces of `model.distiller` as a named variable, which a
# method config merges (`model = dict(distiller=_base_.cwd_distiller)`) and so can a config of
# another method (README, "Compose methods"). Channel-wise KL of the spatial softmax of every FPN
# level (neck outputs P3-P7), one loss per level, logged as loss_cwd_fpn{i}; tau 1, weight 10 per
# level as mmrazor 1.x's GFL/RetinaNet CWD configs (cwd_fpn_retina_r101_retina_r50_1x_coco.py).
cwd_distiller = dict(
    student_recorders=dict(fpn=dict(type='mmrazor.ModuleOutputs', source='neck')),
    teacher_recorders=dict(fpn=dict(type='mmrazor.ModuleOutputs', source='neck')),
    distill_losses={
        f'loss_cwd_fpn{i}': dict(type='mmkd.ChannelWiseDivergence', tau=1.0, loss_weight=10.0)
        for i in range(5)
    },
    loss_forward_mappings={
        f'loss_cwd_fpn{i}': dict(
            preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
            preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
        for i in range(5)
    })
