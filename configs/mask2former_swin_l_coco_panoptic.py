# Mask2Former, Swin-L (window 12, ImageNet-22k at 384), COCO panoptic, LSJ 1024x1024, 200 queries,
# 737,500 iterations of batch 16 (16 GPUs x 1 image, about 100 epochs).
# Reproduces: MMDetection mask2former_swin-l-p4-w12-384-in21k_16xb1-lsj-100e_coco-panoptic: PQ 57.6
# (box AP 52.2, mask AP 48.5; configs/mask2former/metafile.yml). Memory recipes: docs/memory_recipes.md.
_base_ = './mask2former_swin_b_coco_panoptic.py'
pretrained = 'checkpoints/swin_large_patch4_window12_384_22k.pth'  # official ImageNet-22k Swin-L, 384x384
model = dict(
    backbone=dict(arch='large', init_cfg=dict(checkpoint=pretrained)),
    panoptic_head=dict(num_queries=200, in_channels=[192, 384, 768, 1536]),
)
train_dataloader = dict(batch_size=1, num_workers=1)
max_iters = 737500
param_scheduler = dict(end=max_iters, milestones=[655556, 710184])
interval = 5000
dynamic_intervals = [(max_iters // interval * interval + 1, max_iters)]
train_cfg = dict(max_iters=max_iters, val_interval=interval, dynamic_intervals=dynamic_intervals)
