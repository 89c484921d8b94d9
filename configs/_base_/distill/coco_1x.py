# What every COCO distillation config shares: mmdet's COCO data with mmkd's checks (bad boxes
# refused, workers that resume exactly), 1x schedule and runtime, mmkd imported (registers its
# modules), the DetectionDistill algorithm and the NaN/Inf guard. The family bases beside this
# file add the student, the teacher and its weights, and the lr.
_base_ = [
    'mmdet::_base_/datasets/coco_detection.py', 'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py', '../datasets/checked_coco.py'
]
globals().update(_base_.checked_coco)  # mmkd.CheckedCocoDataset, custom_imports=['mmkd']
model = dict(_scope_='mmkd', type='DetectionDistill', distiller=dict(type='DetectionDistiller'))
# no gradient clipping: a method whose official code clips says so in its config
# a NaN/Inf loss stops training at that iteration, naming the loss and level; action='skip'
# drops such steps instead (mmkd/engine/hooks/loss_guard.py)
custom_hooks = [dict(type='mmkd.DistillLossGuardHook', action='error')]
