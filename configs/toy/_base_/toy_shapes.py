# Toy Shapes (mmkd/datasets/toy_shapes.py): 320 train / 100 val images of 128x128, 4 classes,
# written on first use. Everything here is prefixed `toy_`; toy configs assign these to the
# standard keys with `_delete_=True`, so that the COCO settings of the config they inherit
# are replaced rather than merged.
toy_classes = ('circle', 'square', 'triangle', 'cross')
toy_data_root = 'data/toy_shapes/'
toy_image_size = (128, 128)

toy_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=toy_image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
toy_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=toy_image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
toy_train_dataloader = dict(
    _delete_=True,
    batch_size=8,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type='mmkd.ToyShapesDataset',
        data_root=toy_data_root,
        toy_cfg=dict(num_train=320, num_val=100),
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img=''),
        filter_cfg=dict(filter_empty_gt=True, min_size=4),
        pipeline=toy_train_pipeline))
toy_val_dataloader = dict(
    _delete_=True,
    batch_size=8,
    num_workers=0,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='mmkd.ToyShapesDataset',
        data_root=toy_data_root,
        toy_cfg=dict(num_train=320, num_val=100),
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img=''),
        test_mode=True,
        pipeline=toy_test_pipeline))
toy_val_evaluator = dict(
    _delete_=True,
    type='CocoMetric',
    ann_file=toy_data_root + 'annotations/instances_val.json',
    metric='bbox',
    format_only=False)

# schedule: a few epochs from scratch (no ImageNet weights offline), one validation at the end
toy_epochs = 8
toy_train_cfg = dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs=toy_epochs,
                     val_interval=toy_epochs)
toy_param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=toy_epochs, eta_min_ratio=0.05)
]
toy_optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=1e-4),
    clip_grad=dict(max_norm=35, norm_type=2))
toy_default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=toy_epochs, max_keep_ckpts=1),
    visualization=dict(draw=False))

# detector changes: 4 classes; backbones trained from scratch, so BN learns and nothing is frozen
toy_backbone = dict(init_cfg=None, frozen_stages=-1, norm_eval=False)
