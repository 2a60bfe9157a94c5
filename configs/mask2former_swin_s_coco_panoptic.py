# Mask2Former, Swin-S (window 7, ImageNet-1k), COCO panoptic, LSJ 1024x1024, 50 epochs, total batch 16.
# Reproduces: MMDetection mask2former_swin-s-p4-w7-224_8xb2-lsj-50e_coco-panoptic: PQ 54.5
# (box AP 47.8, mask AP 44.5; configs/mask2former/metafile.yml).
_base_ = './mask2former_swin_t_coco_panoptic.py'
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
