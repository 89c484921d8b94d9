# MGD (Yang et al., ECCV 2022) on Faster R-CNN: masked generative distillation of FPN levels
# P2-P5 with the official two-stage settings (yzd-v/MGD det/configs/distillers/mgd/
# cascade_mask_rcnn_rx101_32x4d_distill_faster_rcnn_r50_fpn_2x_coco.py): alpha 5e-7, lambda
# (mask ratio) 0.45, gradient clipping at 35, and no inheriting (that config's Cascade Mask R-CNN
# teacher has other heads; MGD has no same-architecture two-stage config). It trains 2x: see the
# _2x_ config.
_base_ = ['../_base_/distill/faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py']

fpn_levels = [0, 1, 2, 3]
model = dict(
    distiller=dict(
        student_recorders=dict(fpn=dict(type='mmrazor.ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='mmrazor.ModuleOutputs', source='neck')),
        connectors={
            f'mgd_fpn{i}': dict(type='mmkd.MGDConnector', student_channels=256,
                                teacher_channels=256, lambda_mgd=0.45)
            for i in fpn_levels
        },
        distill_losses={f'loss_mgd_fpn{i}': dict(type='mmkd.MGDLoss', alpha_mgd=5e-7)
                        for i in fpn_levels},
        loss_forward_mappings={
            f'loss_mgd_fpn{i}': dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=i,
                             connector=f'mgd_fpn{i}'),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
            for i in fpn_levels
        }))
# gradient clipping as the official config (L64); its baseline:
# configs/detectors/faster-rcnn_r18-fpn_clip-grad-35_1x_coco.py
optim_wrapper = dict(clip_grad=dict(max_norm=35, norm_type=2))
