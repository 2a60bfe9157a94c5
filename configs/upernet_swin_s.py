# UperNet, Swin-S, ADE20K 512x512, 160k iterations, total batch 16.
# Reproduces: official Swin segmentation repo 47.64 mIoU single-scale (MMSegmentation: 47.72).
_base_ = './upernet_swin_t.py'
pretrained = 'checkpoints/swin_small_patch4_window7_224.pth'  # official ImageNet-1k Swin-S
model = dict(backbone=dict(arch='small', init_cfg=dict(checkpoint=pretrained)))
