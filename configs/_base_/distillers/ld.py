# LD (Zheng et al., CVPR 2022) on GFL heads, Main LD only: the pieces of `model.distiller` as a
# named variable, which a method config merges (`model = dict(distiller=_base_.ld_distiller)`)
# and so can a config of another method (README, "Compose methods"). KL between the GFL box
# distributions of student and teacher on the student's ATSS positives (weight 0.25, T 10), as
# mmdet's configs/ld/ld_r18-gflv1-r101_fpn_1x_coco.py; Main KD and VLR LD are switched off (the
# ld-full configs switch them on).
ld_distiller = dict(
    student_recorders=dict(
        head=dict(type='mmrazor.ModuleOutputs', source='bbox_head'),
        gt=dict(type='mmkd.BatchData', source='batch_gt_instances'),
        metas=dict(type='mmkd.BatchData', source='batch_img_metas')),
    teacher_recorders=dict(head=dict(type='mmrazor.ModuleOutputs', source='bbox_head')),
    distill_losses=dict(
        loss_ld=dict(
            type='mmkd.GFLLDLoss',
            num_classes=80,
            loss_ld=dict(type='mmkd.LDLoss', tau=10.0, loss_weight=0.25),
            with_main_kd=False,
            with_vlr=False)),
    loss_forward_mappings=dict(
        loss_ld=dict(
            preds_S=dict(from_student=True, recorder='head'),
            preds_T=dict(from_student=False, recorder='head'),
            batch_gt_instances=dict(from_student=True, recorder='gt'),
            batch_img_metas=dict(from_student=True, recorder='metas'))))
