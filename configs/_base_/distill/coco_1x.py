# What every COCO distillation config shares: mmdet's COCO data with mmkd's checks (bad boxes
# refused, workers that resume exactly), 1x schedule and runtime, mmkd imported (registers its
# modules), the DetectionDistill algorithm, the NaN/Inf guard, the teacher check and the
# loss-balance monitor. The family bases beside this file add the student, the teacher and its
# weights, and the lr.
_base_ = [
    'mmdet::_base_/datasets/coco_detection.py', 'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py', '../datasets/checked_coco.py'
]
globals().update(_base_.checked_coco)  # mmkd.CheckedCocoDataset, custom_imports=['mmkd']
model = dict(_scope_='mmkd', type='DetectionDistill', distiller=dict(type='DetectionDistiller'))
# no gradient clipping: a method whose official code clips says so in its config
# a NaN/Inf loss stops training at that iteration, naming the loss and level; action='skip'
# drops such steps instead (mmkd/engine/hooks/loss_guard.py). The other two hooks read the
# settings below. A config that sets its own custom_hooks keeps these with
# `custom_hooks = _base_.custom_hooks + [...]`.
custom_hooks = [
    dict(type='mmkd.DistillLossGuardHook', action='error'),
    dict(type='mmkd.TeacherCheckHook'),
    dict(type='mmkd.DistillWeightsHook'),
]
# before training, evaluate the teacher on the first 500 validation images and stop below 0.05
# mAP (cached by its weights); teacher_check = None skips it (mmkd/engine/hooks/teacher_check.py)
teacher_check = dict(num_images=500, min_map=0.05)
# over the first 50 iterations, measure each distillation term against the detection losses and
# warn when one is >10x or <0.01x; mode='auto' also sets the weights (mmkd's own, not a paper's)
# (mmkd/engine/hooks/loss_balance.py)
loss_balance = dict(mode='monitor', warmup_iters=50)
# e.g. dict(warmup_iters=500, stop_epoch=10, losses=['loss_fgd_*']); the default changes nothing
# (mmkd/engine/hooks/distill_schedule.py)
distill_schedule = dict(warmup_iters=0, stop_epoch=None)
