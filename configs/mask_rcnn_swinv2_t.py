# Mask R-CNN, SwinV2-T backbone, FPN, 1x schedule (12 epochs), COCO 2017, AdamW, multi-scale training:
# the recipe of configs/mask_rcnn_swin_t.py with the backbone swapped for mmswin.SwinV2Backbone.
# Reproduces: no published result. No Mask R-CNN (or any detection or segmentation) figure exists for
# SwinV2-T/S/B/L; the paper's only dense-prediction figures are SwinV2-G's (HTC++, 63.1 box / 54.4 mask
# AP on COCO test-dev), with another detector, recipe and pre-training. Expect V1's 43.7 / 39.8 as the
# reference point, not a promise.
# Pretrained weights: the official ImageNet-1k SwinV2-T, window 16 at 256 pixels (any public V2 format
# loads: official, timm, torchvision, MMPretrain); --cfg-options model.backbone.init_cfg.checkpoint=PATH.
# At 256 pixels its last stage (8x8) ran with window 8, hence pretrained_window_sizes (16, 16, 16, 8).
_base_ = ['mask_rcnn_swin_t.py']
pretrained = 'checkpoints/swinv2_tiny_patch4_window16_256.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmswin.SwinV2Backbone',
        arch='tiny',
        window_size=16,
        pretrained_window_sizes=(16, 16, 16, 8),
        drop_path_rate=0.2,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained),
    ),
)
# As the official V2 training code: no weight decay on the logit scales, the position bias MLPs and
# the q / v biases either (V1's recipe already exempts norms and position tables).
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={
            'logit_scale': dict(decay_mult=0.0),
            'cpb_mlp': dict(decay_mult=0.0),
            'q_bias': dict(decay_mult=0.0),
            'v_bias': dict(decay_mult=0.0),
        }
    )
)
