# RetinaNet, Swin-T (stages 1-3 returned), FPN with P6/P7, 1x schedule, single-scale, COCO 2017.
# Matches: MMDetection swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py (SGD lr 0.01, momentum 0.9, wd 1e-4).
# Published figure: none; MMDetection ships this config without a result (configs/swin/metafile.yml
# lists only Mask R-CNN), so this config states none.
_base_ = [
    '_base_/models/retinanet_swin_fpn.py',
    '_base_/datasets/coco_detection.py',
    '_base_/schedules/schedule_1x.py',
    '_base_/default_runtime_det.py',
]
pretrained = 'checkpoints/swin_tiny_patch4_window7_224.pth'  # official ImageNet-1k Swin-T
model = dict(
    backbone=dict(arch='tiny', drop_path_rate=0.2, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[192, 384, 768]),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001),
)
