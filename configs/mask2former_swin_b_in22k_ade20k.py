# Mask2Former, Swin-B (window 12, ImageNet-22k at 384), ADE20K 640x640, 160k iterations, total batch 16.
# Reproduces: MMSegmentation mask2former_swin-b-in22k-384x384-pre_8xb2-160k_ade20k-640x640: 53.90 mIoU
# single-scale (configs/mask2former/metafile.yaml).
_base_ = './mask2former_swin_b_ade20k.py'
pretrained = 'checkpoints/swin_base_patch4_window12_384_22k.pth'  # official ImageNet-22k Swin-B, 384x384
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
