# Mask R-CNN, Swin-T, FPN, 3x schedule (36 epochs), multi-scale + crop training, COCO 2017.
# Reproduces: official Swin detection repo, Mask R-CNN Swin-T 3x: 46.0 box AP / 41.6 mask AP.
_base_ = [
    '_base_/models/mask_rcnn_swin_fpn.py',
    '_base_/datasets/coco_instance_ms_crop.py',
    '_base_/schedules/schedule_3x.py',
    '_base_/default_runtime_det.py',
]
pretrained = 'checkpoints/swin_tiny_patch4_window7_224.pth'  # official ImageNet-1k Swin-T
model = dict(
    backbone=dict(arch='tiny', drop_path_rate=0.2, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]),
)
