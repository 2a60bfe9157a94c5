# Mask2Former, Swin-B (window 12, ImageNet-1k at 384), COCO panoptic, LSJ 1024x1024, 50 epochs, batch 16.
# Reproduces: MMDetection mask2former_swin-b-p4-w12-384_8xb2-lsj-50e_coco-panoptic: PQ 55.1
# (box AP 48.2, mask AP 44.9; configs/mask2former/metafile.yml).
_base_ = './mask2former_swin_s_coco_panoptic.py'
pretrained = 'checkpoints/swin_base_patch4_window12_384.pth'  # official ImageNet-1k Swin-B, 384x384
model = dict(
    backbone=dict(arch='base', window_size=12, pretrain_img_size=384, init_cfg=dict(checkpoint=pretrained)),
    panoptic_head=dict(in_channels=[128, 256, 512, 1024]),
)
