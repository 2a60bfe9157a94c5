# DINO 5-scale, Swin-L (window 12, ImageNet-22k at 384), 12 epochs, DETR multi-scale training, COCO 2017,
# total batch 16, AdamW lr 1e-4 (backbone 0.1x), gradients clipped at 0.1, backbone activation checkpointing.
# Reproduces: MMDetection dino-5scale_swin-l_8xb2-12e_coco: 57.2 box AP (configs/dino/metafile.yml).
# Memory: about 49 GB per GPU as published, about 25 GB with AMP + with_cp (MMDetection's
# projects/example_largemodel); measured recipes in docs/memory_recipes.md.
_base_ = [
    '_base_/models/dino_5scale_swin.py',
    '_base_/datasets/coco_detection_detr.py',
    '_base_/default_runtime_det.py',
]
pretrained = 'checkpoints/swin_large_patch4_window12_384_22k.pth'  # official ImageNet-22k Swin-L, 384x384
model = dict(
    backbone=dict(
        arch='large',
        window_size=12,
        pretrain_img_size=384,
        drop_path_rate=0.2,
        with_cp=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained),
    ),
    neck=dict(in_channels=[192, 384, 768, 1536]),
)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0001, weight_decay=0.0001),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}),
)
max_epochs = 12
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[11], gamma=0.1)]
auto_scale_lr = dict(base_batch_size=16)
