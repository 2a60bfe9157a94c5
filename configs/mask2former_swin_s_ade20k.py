# Mask2Former, Swin-S (window 7, ImageNet-1k), ADE20K 512x512, 160k iterations, total batch 16.
# Reproduces: MMSegmentation mask2former_swin-s_8xb2-160k_ade20k-512x512: 51.24 mIoU single-scale
# (configs/mask2former/metafile.yaml).
_base_ = './mask2former_swin_t_ade20k.py'
pretrained = 'checkpoints/swin_small_patch4_window7_224.pth'  # official ImageNet-1k Swin-S
depths = [2, 2, 18, 2]
model = dict(backbone=dict(arch='small', init_cfg=dict(checkpoint=pretrained)))
backbone_norm_multi = dict(lr_mult=0.1, decay_mult=0.0)
custom_keys = {
    f'backbone.stages.{stage}.blocks.{block}.norm': backbone_norm_multi
    for stage, num_blocks in enumerate(depths)
    for block in range(num_blocks)
}
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=custom_keys))
