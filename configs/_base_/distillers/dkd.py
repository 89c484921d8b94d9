# DKD (Zhao et al., CVPR 2022) on two-stage detectors: the pieces of `model.distiller` as a named
# variable, which a method config merges (`model = dict(distiller=_base_.dkd_distiller)`) and so
# can a config of another method (README, "Compose methods"). Decoupled KD (TCKD + NCKD) of the
# RoI-head class logits (classes + background) of student and teacher on the same RoIs (the
# student's sampled proposals); alpha 1, beta 0.25, T 1: mdistiller's detection defaults
# (megvii-research/mdistiller detection/model/config.py L16-20).
dkd_distiller = dict(
    student_recorders=dict(
        logits=dict(type='mmkd.BatchData', source='student_roi_cls_scores'),
        labels=dict(type='mmkd.BatchData', source='roi_labels')),
    teacher_recorders=dict(logits=dict(type='mmkd.BatchData', source='teacher_roi_cls_scores')),
    distill_losses=dict(
        loss_dkd=dict(type='mmkd.DKDLoss', tau=1.0, alpha=1.0, beta=0.25, loss_weight=1.0)),
    loss_forward_mappings=dict(
        loss_dkd=dict(
            preds_S=dict(from_student=True, recorder='logits'),
            preds_T=dict(from_student=False, recorder='logits'),
            gt_labels=dict(from_student=True, recorder='labels'))))
