# DeFeat (Guo et al., CVPR 2021), neck decoupled features on Faster R-CNN: every GT is imitated on
# one FPN level (P2-P6) through a 3x3 adaptation conv, foreground and background separately;
# weights fg 4 / bg 16, the author's advice for COCO (DeFeat issue #18; the released VOC config
# uses 3 / 12). defeat-full_* adds the RoI-head term.
_base_ = ['../_base_/distill/faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py']

model = dict(
    distiller=dict(
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
                batch_img_metas=dict(from_student=True, recorder='metas')))))
# gradient clipping as the released config (ggjy/DeFeat.pytorch configs/kd_faster_rcnn/
# voc_stu_faster_rcnn_r50_decouple_neck.py L183); its baseline:
# configs/detectors/faster-rcnn_r18-fpn_clip-grad-35_1x_coco.py
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
