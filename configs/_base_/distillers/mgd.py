# MGD (Yang et al., ECCV 2022): the pieces of `model.distiller` as named variables, which a
# method config merges (`model = dict(distiller=_base_.mgd_distiller)`) and so can a config of
# another method (README, "Compose methods"). Masked generative distillation of FPN levels (neck
# outputs): each student level goes through its own MGD connector (random mask + generation
# block) and is matched to the teacher's; one loss per level, logged as loss_mgd_fpn{i}.


def _mgd(levels, alpha_mgd, lambda_mgd):
    return dict(
        student_recorders=dict(fpn=dict(type='mmrazor.ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='mmrazor.ModuleOutputs', source='neck')),
        connectors={
            f'mgd_fpn{i}': dict(type='mmkd.MGDConnector', student_channels=256,
                                teacher_channels=256, lambda_mgd=lambda_mgd)
            for i in levels
        },
        distill_losses={f'loss_mgd_fpn{i}': dict(type='mmkd.MGDLoss', alpha_mgd=alpha_mgd)
                        for i in levels},
        loss_forward_mappings={
            f'loss_mgd_fpn{i}': dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=i,
                             connector=f'mgd_fpn{i}'),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
            for i in levels
        })


# every neck output (P3-P7), alpha 2e-5 and mask ratio 0.65 of the official one-stage configs
# (yzd-v/MGD det/configs/distillers/mgd/retina_rx101_64x4d_distill_retina_r50_fpn_2x_coco.py)
mgd_distiller = _mgd([0, 1, 2, 3, 4], alpha_mgd=2e-5, lambda_mgd=0.65)
# neck outputs 0-3 (P2-P5), alpha 5e-7 and mask ratio 0.45 of the official two-stage config
# (cascade_mask_rcnn_rx101_32x4d_distill_faster_rcnn_r50_fpn_2x_coco.py)
mgd_two_stage_distiller = _mgd([0, 1, 2, 3], alpha_mgd=5e-7, lambda_mgd=0.45)
