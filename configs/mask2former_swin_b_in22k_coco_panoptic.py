# Mask2Former, Swin-B (window 12, ImageNet-22k at 384), COCO panoptic, LSJ 1024x1024, 50 epochs, batch 16.
# Reproduces: MMDetection mask2former_swin-b-p4-w12-384-in21k_8xb2-lsj-50e_coco-panoptic: PQ 56.3
# (box AP 50.0, mask AP 46.3; configs/mask2former/metafile.yml).
_base_ = './mask2former_swin_b_coco_panoptic.py'
pretrained = 'checkpoints/swin_base_patch4_window12_384_22k.pth'  # official ImageNet-22k Swin-B, 384x384
model = dict(backbone=dict(init_cfg=dict(checkpoint=pretrained)))
