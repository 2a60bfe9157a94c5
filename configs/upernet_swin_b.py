# UperNet, Swin-B (window 7, ImageNet-1k), ADE20K 512x512, 160k iterations, total batch 16.
# Reproduces: official Swin segmentation repo 48.13 mIoU single-scale (MMSegmentation: 47.99).
_base_ = './upernet_swin_t.py'
pretrained = 'checkpoints/swin_base_patch4_window7_224.pth'  # official ImageNet-1k Swin-B
model = dict(
    backbone=dict(arch='base', init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512),
)
