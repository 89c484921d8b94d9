# DeFeat (Guo et al., CVPR 2021), neck + RoI head on Faster R-CNN: the neck term of
# defeat_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py (fg 4 / bg 16) plus the
# decoupled RoI-head term: KL of the class logits (80 + background) on foreground and background
# RoIs separately (mmkd.DeFeatHeadLoss, T 1, weights 2 / 2 as the released config). Student and
# teacher heads run on the same RoIs: the student's sampled proposals, each pooled from its own
# FPN.
_base_ = ['./defeat_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py']

model = dict(
    distiller=dict(
        student_recorders=dict(
            roi_logits=dict(type='mmkd.BatchData', source='student_roi_cls_scores'),
            roi_labels=dict(type='mmkd.BatchData', source='roi_labels')),
        teacher_recorders=dict(
            roi_logits=dict(type='mmkd.BatchData', source='teacher_roi_cls_scores')),
        distill_losses=dict(
            loss_defeat_head=dict(
                type='mmkd.DeFeatHeadLoss', tau=1.0, loss_weight_fg=2.0, loss_weight_bg=2.0)),
        loss_forward_mappings=dict(
            loss_defeat_head=dict(
                preds_S=dict(from_student=True, recorder='roi_logits'),
                preds_T=dict(from_student=False, recorder='roi_logits'),
                gt_labels=dict(from_student=True, recorder='roi_labels')))))
