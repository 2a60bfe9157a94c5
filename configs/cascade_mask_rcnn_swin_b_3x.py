# Cascade Mask R-CNN, Swin-B (window 7), FPN, 4conv1fc GIoU box heads, 3x schedule, multi-scale + crop, COCO 2017.
# Reproduces: official Swin detection repo, Cascade Mask R-CNN Swin-B 3x: 51.9 box AP / 45.0 mask AP.
# Differs: fp32 here, apex fp16 in the official run (add --amp).
_base_ = './cascade_mask_rcnn_swin_t_3x.py'
pretrained = 'checkpoints/swin_base_patch4_window7_224.pth'  # official ImageNet-1k Swin-B
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.3, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512, 1024]),
)
