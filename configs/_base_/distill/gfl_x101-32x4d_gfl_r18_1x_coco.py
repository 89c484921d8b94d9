# Distillation set-up shared by the one-stage configs: GFL ResNeXt-101 (32x4d) teacher (mmdet zoo,
# ms-2x, box AP 45.9) -> GFL ResNet-18 student, COCO, 1x. Method configs add the distiller.
_base_ = [
    '../datasets/coco_detection.py', '../schedules/schedule_1x.py', '../default_runtime.py'
]
model = dict(
    _scope_='mmkd',
    type='DetectionDistill',
    architecture=dict(cfg_path='configs/_base_/models/gfl_r18_fpn.py'),
    teacher=dict(cfg_path='configs/_base_/models/gfl_x101-32x4d_fpn.py'),
    teacher_ckpt='https://download.openmmlab.com/mmdetection/v2.0/gfl/gfl_x101_32x4d_fpn_mstrain_2x_coco/gfl_x101_32x4d_fpn_mstrain_2x_coco_20200630_102002-50c1ffdb.pth',  # noqa
    distiller=dict(type='DetectionDistiller'))
optim_wrapper = dict(optimizer=dict(lr=0.01), clip_grad=dict(max_norm=35, norm_type=2))
# a NaN/Inf loss stops training at that iteration, naming the loss and level; action='skip'
# drops such steps instead (mmkd/engine/hooks/loss_guard.py)
custom_hooks = [dict(type='mmkd.DistillLossGuardHook', action='error')]
