# Cascade Mask R-CNN, Swin-S, FPN, 4conv1fc GIoU box heads, 3x schedule, multi-scale + crop, COCO 2017.
# Reproduces: official Swin detection repo, Cascade Mask R-CNN Swin-S 3x: 51.9 box AP / 45.0 mask AP.
# Differs: fp32 here, apex fp16 in the official run (add --amp).
_base_ = './cascade_mask_rcnn_swin_t_3x.py'
pretrained = 'checkpoints/swin_small_patch4_window7_224.pth'  # official ImageNet-1k Swin-S
model = dict(backbone=dict(arch='small', drop_path_rate=0.2, init_cfg=dict(checkpoint=pretrained)))
