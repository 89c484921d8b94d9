# CWD (Shu et al., ICCV 2021): channel-wise KL of the spatial softmax of every FPN level
# (neck outputs P3-P7), tau 1, weight 10 per level as mmrazor 1.x's GFL/RetinaNet CWD configs
# (cwd_fpn_retina_r101_retina_r50_1x_coco.py).
_base_ = ['../_base_/distill/gfl_x101-32x4d-fpn_gfl_r18-fpn_1x_coco.py']

fpn_levels = [0, 1, 2, 3, 4]
model = dict(
    distiller=dict(
        student_recorders=dict(fpn=dict(type='mmrazor.ModuleOutputs', source='neck')),
        teacher_recorders=dict(fpn=dict(type='mmrazor.ModuleOutputs', source='neck')),
        distill_losses={
            f'loss_cwd_fpn{i}': dict(type='mmkd.ChannelWiseDivergence', tau=1.0,
                                     loss_weight=10.0)
            for i in fpn_levels
        },
        loss_forward_mappings={
            f'loss_cwd_fpn{i}': dict(
                preds_S=dict(from_student=True, recorder='fpn', data_idx=i),
                preds_T=dict(from_student=False, recorder='fpn', data_idx=i))
            for i in fpn_levels
        }))
