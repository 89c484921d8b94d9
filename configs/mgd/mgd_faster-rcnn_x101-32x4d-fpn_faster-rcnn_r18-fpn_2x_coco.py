# MGD on Faster R-CNN, 2x (24 epochs, steps 16/22) as every official MGD detection config, which
# give the published numbers; otherwise the 1x config. Baseline:
# configs/detectors/faster-rcnn_r18-fpn_clip-grad-35_2x_coco.py.
_base_ = './mgd_faster-rcnn_x101-32x4d-fpn_faster-rcnn_r18-fpn_1x_coco.py'
train_cfg = dict(max_epochs=24)
param_scheduler = [  # mmdet's schedule_2x: steps at epochs 16 and 22
    _base_.param_scheduler[0],
    dict(_base_.param_scheduler[1], end=24, milestones=[16, 22])
]
