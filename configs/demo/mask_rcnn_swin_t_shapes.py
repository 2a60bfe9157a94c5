# Demo: Mask R-CNN with a slim SwinBackbone on the synthetic "shapes" COCO set
# (generated into data/coco_shapes by tools/train.py / `make demo` when missing).
# Sized to learn on a 2-core CPU in minutes: 32-wide Swin, slim FPN and heads, small images.
_base_ = ['../mask_rcnn_swin_t.py']

data_root = 'data/coco_shapes/'
classes = ('rectangle', 'ellipse', 'triangle', 'star')
metainfo = dict(classes=classes, palette=[(220, 20, 60), (0, 128, 255), (60, 180, 75), (255, 200, 0)])
# Generated on first use (see mmswin/datasets/coco_shapes.py); seed fixes its content.
demo_data = dict(
    kind='coco_shapes', root=data_root, num_train=300, num_val=60, max_shapes=4, radius_range=(0.18, 0.35), seed=0
)

channels = 64
# Trained from scratch: normalised FPN and heads learn much faster (He et al., "Rethinking ImageNet Pre-training").
head_norm = dict(type='GN', num_groups=16, requires_grad=True)
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmswin.SwinBackbone',
        arch=dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8)),
        # 128-pixel images give 32x32 tokens: window 4 tiles every stage without padding.
        window_size=4,
        mask_padding=True,
        drop_path_rate=0.0,
        out_indices=(0, 1, 2, 3),
    ),
    neck=dict(in_channels=[32, 64, 128, 256], out_channels=channels, norm_cfg=head_norm),
    rpn_head=dict(in_channels=channels, feat_channels=channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(in_channels=channels, fc_out_channels=256, num_classes=len(classes)),
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(
            num_convs=2, in_channels=channels, conv_out_channels=32, num_classes=len(classes), norm_cfg=head_norm
        ),
    ),
    train_cfg=dict(rpn_proposal=dict(nms_pre=500, max_per_img=200), rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=200), rcnn=dict(max_per_img=20)),
)

image_scale = (128, 128)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        pipeline=train_pipeline,
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
    ),
)
val_dataloader = dict(
    batch_size=4, num_workers=1, dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline)
)
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

max_iters = 800
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=0, end=max_iters, eta_min=1e-6),
]
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.05), clip_grad=dict(max_norm=10.0))
auto_scale_lr = dict(base_batch_size=4)
default_hooks = dict(
    logger=dict(interval=25, log_metric_by_epoch=False),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=2),
    visualization=dict(draw=False),
)
log_processor = dict(by_epoch=False, window_size=25)

# A fixed seed: `make demo` reproduces the figures in README.md (and resumed runs repeat
# the uninterrupted losses, see mmswin/engine/iter_seed.py).
randomness = dict(seed=0)
