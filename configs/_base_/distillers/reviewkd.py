# ReviewKD (Chen et al., CVPR 2021): the pieces of `model.distiller` as a named variable, which a
# method config merges (`model = dict(distiller=_base_.reviewkd_distiller)`) and so can a config
# of another method (README, "Compose methods"). The student's FPN levels P2-P6 go through the
# review connector (attention-based fusion, coarse to fine) and are matched to the teacher's with
# the hierarchical context loss; weight 1.2 as the official R18 <- R101 config
# (dvlab-research/ReviewKD Detection/configs/ReviewKD-R18-R101.yaml).
reviewkd_distiller = dict(
    student_recorders=dict(fpn=dict(type='mmrazor.ModuleOutputs', source='neck')),
    teacher_recorders=dict(fpn=dict(type='mmrazor.ModuleOutputs', source='neck')),
    connectors=dict(
        review=dict(type='mmkd.ABFConnector', in_channels=256, out_channels=256,
                    mid_channels=256, num_levels=5)),
    distill_losses=dict(loss_hcl=dict(type='mmkd.HCLLoss', loss_weight=1.2)),
    loss_forward_mappings=dict(
        loss_hcl=dict(
            preds_S=dict(from_student=True, recorder='fpn', connector='review'),
            preds_T=dict(from_student=False, recorder='fpn'))))
