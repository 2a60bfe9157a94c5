# Mask2Former, Swin-T (window 7, ImageNet-1k), COCO instance segmentation (80 classes), LSJ 1024x1024,
# 50 epochs, total batch 16.
# Reproduces: MMDetection mask2former_swin-t-p4-w7-224_8xb2-lsj-50e_coco: 47.7 box AP / 44.7 mask AP
# (configs/mask2former/metafile.yml).
_base_ = './mask2former_swin_t_coco_panoptic.py'
num_things_classes = 80
num_stuff_classes = 0
num_classes = num_things_classes + num_stuff_classes
data_preprocessor = dict(
    pad_seg=False,
    batch_augments=[
        dict(
            type='BatchFixedSizePad', size=(1024, 1024), img_pad_value=0, pad_mask=True, mask_pad_value=0, pad_seg=False
        )
    ],
)
model = dict(
    data_preprocessor=data_preprocessor,
    panoptic_head=dict(
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1]),
    ),
    panoptic_fusion_head=dict(num_things_classes=num_things_classes, num_stuff_classes=num_stuff_classes),
    test_cfg=dict(panoptic_on=False),
)
# The instance data set (annotations/instances_*2017.json) with LSJ, in place of the panoptic one.
train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=(1024, 1024), ratio_range=(0.1, 2.0), resize_type='Resize', keep_ratio=True),
    dict(
        type='RandomCrop', crop_size=(1024, 1024), crop_type='absolute', recompute_bbox=True, allow_negative_crop=True
    ),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True),  # crops can empty a mask
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args=None),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
dataset_type = 'mmswin.CheckedCocoDataset'  # CocoDataset that names bad files and annotations
train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(_delete_=True, img='train2017/'),  # no panoptic PNGs
        pipeline=train_pipeline,
    )
)
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(_delete_=True, img='val2017/'),
        pipeline=test_pipeline,
    )
)
test_dataloader = val_dataloader
val_evaluator = dict(
    _delete_=True,
    type='CocoMetric',
    ann_file='data/coco/annotations/instances_val2017.json',
    metric=['bbox', 'segm'],
    format_only=False,
    backend_args=None,
)
test_evaluator = val_evaluator
