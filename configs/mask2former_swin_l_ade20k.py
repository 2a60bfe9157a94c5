# Mask2Former, Swin-L (window 12, ImageNet-22k at 384), ADE20K 640x640, 160k iterations, total batch 16.
# Reproduces: MMSegmentation mask2former_swin-l-in22k-384x384-pre_8xb2-160k_ade20k-640x640: 56.01 mIoU
# single-scale (configs/mask2former/metafile.yaml). Memory recipes: docs/memory_recipes.md.
_base_ = './mask2former_swin_b_ade20k.py'
pretrained = 'checkpoints/swin_large_patch4_window12_384_22k.pth'  # official ImageNet-22k Swin-L, 384x384
model = dict(
    backbone=dict(arch='large', init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(num_queries=100, in_channels=[192, 384, 768, 1536]),
)
