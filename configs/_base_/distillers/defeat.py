# DeFeat (Guo et al., CVPR 2021), neck term: the pieces of `model.distiller` as a named
# variable, which a method config merges (`model = dict(distiller=_base_.defeat_distiller)`) and
# so can a config of another method (README, "Compose methods"). Every GT is imitated on one FPN
# level (P2-P6) through a 3x3 adaptation conv, foreground and background separately; weights
# fg 4 / bg 16, the author's advice for COCO (DeFeat issue #18; the released VOC config uses
# 3 / 12). The defeat-full config adds the RoI-head term.
defeat_distiller = dict(
    student_recorders=dict(
        fpn=dict(type='mmrazor.ModuleOutputs', source='neck'),
        gt=dict(type='mmkd.BatchData', source='batch_gt_instances'),
        metas=dict(type='mmkd.BatchData', source='batch_img_metas')),
    teacher_recorders=dict(fpn=dict(type='mmrazor.ModuleOutputs', source='neck')),
    distill_losses=dict(
        loss_defeat_neck=dict(
            type='mmkd.DeFeatLoss', student_channels=256, teacher_channels=256,
            loss_weight_fg=4.0, loss_weight_bg=16.0, strides=(4, 8, 16, 32, 64))),
    loss_forward_mappings=dict(
        loss_defeat_neck=dict(
            preds_S=dict(from_student=True, recorder='fpn'),
            preds_T=dict(from_student=False, recorder='fpn'),
            batch_gt_instances=dict(from_student=True, recorder='gt'),
            batch_img_metas=dict(from_student=True, recorder='metas'))))
