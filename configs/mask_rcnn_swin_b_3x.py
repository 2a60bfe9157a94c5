# Mask R-CNN, Swin-B, FPN, 3x schedule, multi-scale + crop training, COCO 2017.
# Reference: the official Swin detection repo reports Cascade Mask R-CNN Swin-B 3x at 51.9 box / 45.0 mask AP;
# for plain Mask R-CNN Swin-B there is no official figure, so this config states none.
_base_ = './mask_rcnn_swin_t_3x.py'
pretrained = 'checkpoints/swin_base_patch4_window7_224_22k.pth'  # official ImageNet-22k Swin-B
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.3, init_cfg=dict(checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512, 1024]),
)
