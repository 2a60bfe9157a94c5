# Demo: UperNet with a slim SwinBackbone on the synthetic "shapes" set in the ADE20K layout
# (generated into data/ade_shapes by tools/train.py / `make demo-seg` when missing).
# Keeps the published recipe's SyncBN, which the tools turn into BN on one CPU process.
_base_ = ['../upernet_swin_t.py']

data_root = 'data/ade_shapes'
classes = ('background', 'rectangle', 'ellipse', 'triangle', 'star')
metainfo = dict(classes=classes, palette=[(0, 0, 0), (220, 20, 60), (0, 128, 255), (60, 180, 75), (255, 200, 0)])
demo_data = dict(kind='ade_shapes', root=data_root, num_train=300, num_val=60, seed=0)

crop_size = (128, 128)
channels = 64
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        _delete_=True,
        type='mmswin.SwinBackbone',
        arch=dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8)),
        # 128-pixel crops give 32x32 tokens: window 4 tiles every stage without padding.
        window_size=4,
        mask_padding=True,
        drop_path_rate=0.0,
        out_indices=(0, 1, 2, 3),
    ),
    decode_head=dict(in_channels=[32, 64, 128, 256], channels=channels, num_classes=len(classes)),
    auxiliary_head=dict(in_channels=128, channels=32, num_classes=len(classes)),
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='RandomResize', scale=(160, 160), ratio_range=(0.75, 1.25), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.9),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(160, 160), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs'),
]
dataset = dict(
    type='mmswin.CheckedBaseSegDataset',
    data_root=data_root,
    metainfo=metainfo,
    img_suffix='.jpg',
    seg_map_suffix='.png',
    reduce_zero_label=False,
)
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(
        _delete_=True,
        **dataset,
        pipeline=train_pipeline,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
    ),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    dataset=dict(
        _delete_=True,
        **dataset,
        pipeline=test_pipeline,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
    ),
)
test_dataloader = val_dataloader

max_iters = 400
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(lr=6e-4, weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=50, end=max_iters, by_epoch=False),
]
auto_scale_lr = dict(base_batch_size=8)
default_hooks = dict(
    logger=dict(interval=25), checkpoint=dict(interval=max_iters, max_keep_ckpts=2), visualization=dict(draw=False)
)

# A fixed seed: `make demo` reproduces the figures in README.md (and resumed runs repeat
# the uninterrupted losses, see mmswin/engine/iter_seed.py).
randomness = dict(seed=0)
