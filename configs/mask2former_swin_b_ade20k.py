# Mask2Former, Swin-B (window 12, ImageNet-1k at 384), ADE20K 640x640, 160k iterations, total batch 16.
# Reproduces: MMSegmentation mask2former_swin-b-in1k-384x384-pre_8xb2-160k_ade20k-640x640: 52.44 mIoU
# single-scale (configs/mask2former/metafile.yaml).
# Differs: mmswin's runtime hooks; no test-time-augmentation model (tools/test.py has no --tta).
_base_ = [
    '_base_/models/mask2former_swin_seg.py',
    '_base_/datasets/ade20k_640x640.py',
    '_base_/schedules/schedule_mask2former_160k.py',
    '_base_/default_runtime_seg.py',
]
pretrained = 'checkpoints/swin_base_patch4_window12_384.pth'  # official ImageNet-1k Swin-B, 384x384
depths = [2, 2, 18, 2]
data_preprocessor = dict(
    _delete_=True,
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(640, 640),  # the training crop; test images are not padded
)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        arch='base', window_size=12, pretrain_img_size=384, init_cfg=dict(type='Pretrained', checkpoint=pretrained)
    ),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
)
# Short side 320-1280 (0.5-2.0 x 640), longest side at most 2560, then the 640x640 crop.
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(
        type='RandomChoiceResize',
        scales=[int(x * 0.1 * 640) for x in range(5, 21)],
        resize_type='ResizeShortestEdge',
        max_size=2560,
    ),
    dict(type='RandomCrop', crop_size=(640, 640), cat_max_ratio=0.75),
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
