# Cascade Mask R-CNN, Swin-T, FPN, 4conv1fc GIoU box heads, 3x schedule (36 epochs), multi-scale + crop, COCO 2017.
# Reproduces: official Swin detection repo, Cascade Mask R-CNN Swin-T 3x: 50.4 box AP / 43.7 mask AP
# (README of SwinTransformer/Swin-Transformer-Object-Detection).
# Differs: the official run trained in apex fp16 (use_fp16=True); this config trains in fp32
# (add --amp for mixed precision). Its box heads use SyncBN: tools/train.py turns it into BN on one process.
_base_ = [
    '_base_/models/cascade_mask_rcnn_swin_fpn.py',
    '_base_/datasets/coco_instance_ms_crop.py',
    '_base_/schedules/schedule_3x.py',
    '_base_/default_runtime_det.py',
]
pretrained = 'checkpoints/swin_tiny_patch4_window7_224.pth'  # official ImageNet-1k Swin-T
model = dict(
    backbone=dict(arch='tiny', drop_path_rate=0.2, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]),
)
# The official repo warms up over 500 iterations (MMDetection 2.x's schedule_1x).
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
