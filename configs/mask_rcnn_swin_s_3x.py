# Mask R-CNN, Swin-S, FPN, 3x schedule, multi-scale + crop training, COCO 2017.
# Reproduces: official Swin detection repo 48.5 box AP / 43.3 mask AP (MMDetection: 48.2 / 43.2).
_base_ = './mask_rcnn_swin_t_3x.py'
pretrained = 'checkpoints/swin_small_patch4_window7_224.pth'  # official ImageNet-1k Swin-S
model = dict(backbone=dict(arch='small', drop_path_rate=0.2, init_cfg=dict(checkpoint=pretrained)))
