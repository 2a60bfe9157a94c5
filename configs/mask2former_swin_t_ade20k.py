# Mask2Former, Swin-T (window 7, ImageNet-1k), ADE20K 512x512, 160k iterations, total batch 16.
# Reproduces: MMSegmentation mask2former_swin-t_8xb2-160k_ade20k-512x512: 48.66 mIoU single-scale
# (configs/mask2former/metafile.yaml).
# Differs: mmswin's runtime hooks; no test-time-augmentation model (tools/test.py has no --tta).
_base_ = [
    '_base_/models/mask2former_swin_seg.py',
    '_base_/datasets/ade20k.py',
    '_base_/schedules/schedule_mask2former_160k.py',
    '_base_/default_runtime_seg.py',
]
pretrained = 'checkpoints/swin_tiny_patch4_window7_224.pth'  # official ImageNet-1k Swin-T
depths = [2, 2, 6, 2]
model = dict(
    backbone=dict(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
)
# Short side 256-1024 (0.5-2.0 x 512), longest side at most 2048, then the 512x512 crop.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(
        type='RandomChoiceResize',
        scales=[int(512 * x * 0.1) for x in range(5, 21)],
        resize_type='ResizeShortestEdge',
        max_size=2048,
    ),
    dict(type='RandomCrop', crop_size=(512, 512), cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
backbone_norm_multi = dict(lr_mult=0.1, decay_mult=0.0)
custom_keys = {
    f'backbone.stages.{stage}.blocks.{block}.norm': backbone_norm_multi
    for stage, num_blocks in enumerate(depths)
    for block in range(num_blocks)
}
custom_keys.update(
    {f'backbone.stages.{stage}.downsample.norm': backbone_norm_multi for stage in range(len(depths) - 1)}
)
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=custom_keys))
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000, save_best='mIoU'))
