# CrossKD (Wang et al., CVPR 2024) on GFL heads: the pieces of `model.distiller` as a named
# variable, which a method config merges (`model = dict(distiller=_base_.crosskd_distiller)`) and
# so can a config of another method (README, "Compose methods"). The student's head features
# after the 3rd conv of each branch (bbox_head.cls_convs.2 / reg_convs.2, every FPN level in one
# record) are scaled to the teacher's channel statistics and run through the teacher's 4th conv,
# gfl_cls and gfl_reg; these cross-head predictions mimic the teacher's own: quality-focal KD on
# the classes (weight 1), KL on the box distributions (T 1, weight 4). jbwang1997/CrossKD
# configs/crosskd/crosskd_r50_gflv1_r101-2x-ms_fpn_1x_coco.py L53-60. The loss runs the teacher's
# head itself: DetectionDistill hands it over (GFLCrossKDLoss.needs_teacher_head).
crosskd_distiller = dict(
    student_recorders=dict(
        crosskd_cls=dict(type='mmkd.LevelOutputs', source='bbox_head.cls_convs.2'),
        crosskd_reg=dict(type='mmkd.LevelOutputs', source='bbox_head.reg_convs.2'),
        gt=dict(type='mmkd.BatchData', source='batch_gt_instances'),
        metas=dict(type='mmkd.BatchData', source='batch_img_metas')),
    teacher_recorders=dict(
        crosskd_cls=dict(type='mmkd.LevelOutputs', source='bbox_head.cls_convs.2'),
        crosskd_reg=dict(type='mmkd.LevelOutputs', source='bbox_head.reg_convs.2'),
        head=dict(type='mmrazor.ModuleOutputs', source='bbox_head')),
    distill_losses=dict(
        loss_crosskd=dict(
            type='mmkd.GFLCrossKDLoss',
            num_classes=80,
            reused_teacher_head_idx=3,
            loss_cls_kd=dict(type='mmkd.KDQualityFocalLoss', beta=1.0, loss_weight=1.0),
            loss_reg_kd=dict(type='mmkd.LDLoss', tau=1.0, loss_weight=4.0,
                             reduction_over_bins='sum'))),
    loss_forward_mappings=dict(
        loss_crosskd=dict(
            cls_feats_S=dict(from_student=True, recorder='crosskd_cls'),
            reg_feats_S=dict(from_student=True, recorder='crosskd_reg'),
            cls_feats_T=dict(from_student=False, recorder='crosskd_cls'),
            reg_feats_T=dict(from_student=False, recorder='crosskd_reg'),
            preds_T=dict(from_student=False, recorder='head'),
            batch_gt_instances=dict(from_student=True, recorder='gt'),
            batch_img_metas=dict(from_student=True, recorder='metas'))))
