# The official Swin detection repository's Cascade Mask R-CNN Swin-B 3x
# (configs/swin/cascade_mask_rcnn_swin_base_patch4_window7_mstrain_480-800_giou_4conv1f_adamw_3x_coco.py):
# the Swin-T recipe with Swin-B widths (embed 128, heads 4-32), depths (2, 2, 18, 2), drop_path_rate 0.3.
_base_ = './cascade_mask_rcnn_swin_t_3x_official.py'
model = dict(
    backbone=dict(embed_dims=128, depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32]),
    neck=dict(in_channels=[128, 256, 512, 1024]),
)
