# DKD (Zhao et al., CVPR 2022) on Faster R-CNN: decoupled KD (TCKD + NCKD) of the RoI-head class
# logits (80 classes + background). Student and teacher RoI heads run on the same RoIs: the
# student's sampled proposals, each model pooling from its own FPN. alpha 1, beta 0.25, T 1:
# mdistiller's detection defaults (detection/model/config.py).
_base_ = ['../_base_/distill/faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py']

model = dict(
    distiller=dict(
        student_recorders=dict(
            logits=dict(type='mmkd.BatchData', source='student_roi_cls_scores'),
            labels=dict(type='mmkd.BatchData', source='roi_labels')),
        teacher_recorders=dict(
            logits=dict(type='mmkd.BatchData', source='teacher_roi_cls_scores')),
        distill_losses=dict(
            loss_dkd=dict(type='mmkd.DKDLoss', tau=1.0, alpha=1.0, beta=0.25, loss_weight=1.0)),
        loss_forward_mappings=dict(
            loss_dkd=dict(
                preds_S=dict(from_student=True, recorder='logits'),
                preds_T=dict(from_student=False, recorder='logits'),
                gt_labels=dict(from_student=True, recorder='labels')))))
