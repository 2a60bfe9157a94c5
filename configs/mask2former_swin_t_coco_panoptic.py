# Mask2Former, Swin-T (window 7, ImageNet-1k), COCO panoptic, LSJ 1024x1024, 50 epochs, total batch 16.
# Reproduces: MMDetection mask2former_swin-t-p4-w7-224_8xb2-lsj-50e_coco-panoptic: PQ 53.4
# (box AP 46.3, mask AP 43.4; configs/mask2former/metafile.yml).
# Differs: mmswin's runtime hooks (IterSeedHook, FiniteLossHook); PQ needs panopticapi installed.
_base_ = [
    '_base_/models/mask2former_swin_coco.py',
    '_base_/datasets/coco_panoptic_lsj.py',
    '_base_/schedules/schedule_mask2former_50e.py',
    '_base_/default_runtime_det.py',
]
pretrained = 'checkpoints/swin_tiny_patch4_window7_224.pth'  # official ImageNet-1k Swin-T
depths = [2, 2, 6, 2]
model = dict(
    backbone=dict(arch='tiny', drop_path_rate=0.3, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    panoptic_head=dict(in_channels=[96, 192, 384, 768]),
)
# Norms inside the backbone: 0.1x lr and no weight decay, like the rest of the backbone's norms.
backbone_norm_multi = dict(lr_mult=0.1, decay_mult=0.0)
custom_keys = {
    f'backbone.stages.{stage}.blocks.{block}.norm': backbone_norm_multi
    for stage, num_blocks in enumerate(depths)
    for block in range(num_blocks)
}
custom_keys.update(
    {f'backbone.stages.{stage}.downsample.norm': backbone_norm_multi for stage in range(len(depths) - 1)}
)
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=custom_keys))
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, save_last=True, max_keep_ckpts=3, interval=5000)
)
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
