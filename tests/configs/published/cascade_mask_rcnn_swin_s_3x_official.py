# The official Swin detection repository's Cascade Mask R-CNN Swin-S 3x
# (configs/swin/cascade_mask_rcnn_swin_small_patch4_window7_mstrain_480-800_giou_4conv1f_adamw_3x_coco.py):
# the Swin-T recipe with depths (2, 2, 18, 2); drop_path_rate stays 0.2.
_base_ = './cascade_mask_rcnn_swin_t_3x_official.py'
model = dict(backbone=dict(depths=[2, 2, 18, 2]))
