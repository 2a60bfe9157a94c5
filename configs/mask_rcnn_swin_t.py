# Mask R-CNN, Swin-T backbone, FPN, 1x schedule (12 epochs), COCO 2017, AdamW, multi-scale training.
# Reproduces: official Swin detection repo, Mask R-CNN Swin-T 1x: 43.7 box AP / 39.8 mask AP
# (MMDetection's single-scale 1x: 42.7 / 39.3).
# Pretrained weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH (any public Swin format).
_base_ = [
    '_base_/models/mask_rcnn_swin_fpn.py',
    '_base_/datasets/coco_instance.py',
    '_base_/schedules/schedule_1x.py',
    '_base_/default_runtime_det.py',
]
pretrained = 'checkpoints/swin_tiny_patch4_window7_224.pth'  # official ImageNet-1k Swin-T
model = dict(
    backbone=dict(arch='tiny', drop_path_rate=0.2, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))

# The official multi-scale recipe: short side 480-800, or a 384x600 crop between two resizes.
multi_scale = [(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333), (640, 1333), (672, 1333),
               (704, 1333), (736, 1333), (768, 1333), (800, 1333)]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=multi_scale, keep_ratio=True)],
            [
                dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)], keep_ratio=True),
                dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600), allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales=multi_scale, keep_ratio=True),
            ],
        ]),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
