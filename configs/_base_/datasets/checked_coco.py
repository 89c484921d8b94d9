# What mmkd changes in mmdet's COCO data settings, applied by every COCO config (distilled
# students through ../distill/coco_1x.py, baselines in configs/detectors/) right after inheriting
# mmdet's data base:
#
#     _base_ = [..., '../_base_/datasets/checked_coco.py']
#     globals().update(_base_.checked_coco)
#
# (mmengine runs a config file with its variables as the module namespace; the dicts below are
# merged into mmdet's dataloaders, not replacing them.)
# - mmkd.CheckedCocoDataset: mmdet's CocoDataset, but a ground-truth box with x2 < x1, y2 < y1 or
#   NaN/Inf coordinates stops the run at start-up naming the image and annotation (mmdet drops
#   such boxes silently); bad_boxes='skip' leaves those images out with a warning instead.
# - persistent_workers=False for training: the data workers start afresh each epoch, seeded by
#   mmengine from the seed, the rank and the worker id, so a killed run resumed with --resume
#   augments exactly as the uninterrupted one (persistent workers carry their random streams
#   across epochs, which no checkpoint holds); restarting two workers per epoch costs seconds.
checked_coco = dict(
    custom_imports=dict(imports=['mmkd'], allow_failed_imports=False),
    train_dataloader=dict(persistent_workers=False,
                          dataset=dict(type='mmkd.CheckedCocoDataset', bad_boxes='error')),
    val_dataloader=dict(dataset=dict(type='mmkd.CheckedCocoDataset', bad_boxes='error')),
    test_dataloader=dict(dataset=dict(type='mmkd.CheckedCocoDataset', bad_boxes='error')))
