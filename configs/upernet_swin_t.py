# UperNet, Swin-T backbone, ADE20K 512x512, 160k iterations, total batch 16 (8 GPUs x 2), AdamW lr 6e-5.
# Reproduces: official Swin segmentation repo 44.51 mIoU single-scale (MMSegmentation: 44.41).
_base_ = [
    '_base_/models/upernet_swin.py',
    '_base_/datasets/ade20k.py',
    '_base_/schedules/schedule_160k.py',
    '_base_/default_runtime_seg.py',
]
pretrained = 'checkpoints/swin_tiny_patch4_window7_224.pth'  # official ImageNet-1k Swin-T
model = dict(
    backbone=dict(arch='tiny', drop_path_rate=0.3, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150),
)
