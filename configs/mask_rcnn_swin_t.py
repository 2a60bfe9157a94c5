# Mask R-CNN, Swin-T backbone, FPN, 1x schedule (12 epochs), COCO 2017, AdamW, multi-scale training.
# Reproduces: official Swin detection repo, Mask R-CNN Swin-T 1x: 43.7 box AP / 39.8 mask AP
# (MMDetection's single-scale 1x: 42.7 / 39.3).
# Pretrained weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH (any public Swin format).
_base_ = [
    '_base_/models/mask_rcnn_swin_fpn.py',
    '_base_/datasets/coco_instance_ms_crop.py',
    '_base_/schedules/schedule_1x.py',
    '_base_/default_runtime_det.py',
]
pretrained = 'checkpoints/swin_tiny_patch4_window7_224.pth'  # official ImageNet-1k Swin-T
model = dict(
    backbone=dict(arch='tiny', drop_path_rate=0.2, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]),
)
