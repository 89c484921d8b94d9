# BCKD (Yang et al., ICCV 2023) on GFL heads: the pieces of `model.distiller` as a named variable,
# which a method config merges (`model = dict(distiller=_base_.bckd_distiller)`) and so can a
# config of another method (README, "Compose methods"). Over every anchor of the student's GFL
# assignment: binary (sigmoid) KD of the class logits, focal-weighted (weight 1), and GIoU between
# the boxes decoded from the student's and the teacher's distributions, weighted by the largest
# class-score gap (weight 4). TinyTigerPan/BCKD configs/bckd/bckd_r50_gflv1_r101_fpn_coco_1x.py
# L39-46, where the LD and VLR terms have weight 0 (not computed here).
bckd_distiller = dict(
    student_recorders=dict(
        head=dict(type='mmrazor.ModuleOutputs', source='bbox_head'),
        gt=dict(type='mmkd.BatchData', source='batch_gt_instances'),
        metas=dict(type='mmkd.BatchData', source='batch_img_metas')),
    teacher_recorders=dict(head=dict(type='mmrazor.ModuleOutputs', source='bbox_head')),
    distill_losses=dict(
        loss_bckd=dict(
            type='mmkd.GFLBCKDLoss',
            num_classes=80,
            loss_cls_kd=dict(type='mmkd.KDQualityFocalLoss', beta=1.0, loss_weight=1.0),
            loss_loc_kd=dict(type='mmdet.GIoULoss', loss_weight=4.0))),
    loss_forward_mappings=dict(
        loss_bckd=dict(
            preds_S=dict(from_student=True, recorder='head'),
            preds_T=dict(from_student=False, recorder='head'),
            batch_gt_instances=dict(from_student=True, recorder='gt'),
            batch_img_metas=dict(from_student=True, recorder='metas'))))
