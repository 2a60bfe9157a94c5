# UperNet, SwinV2-T backbone, ADE20K 512x512, 160k iterations, total batch 16 (8 GPUs x 2), AdamW lr 6e-5:
# the recipe of configs/upernet_swin_t.py with the backbone swapped for mmswin.SwinV2Backbone.
# Reproduces: no published result. No UperNet (or any segmentation) figure exists for SwinV2-T/S/B/L;
# the paper's only dense-prediction figures are SwinV2-G's (UperNet, 59.9 mIoU on ADE20K val), with
# another recipe and pre-training. V1's 44.51 mIoU is the reference point, not a promise.
# Pretrained weights: the official ImageNet-1k SwinV2-T, window 16 at 256 pixels (any public V2 format);
# its last stage ran with window 8 at 256 pixels, hence pretrained_window_sizes (16, 16, 16, 8).
_base_ = ['upernet_swin_t.py']
pretrained = 'checkpoints/swinv2_tiny_patch4_window16_256.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmswin.SwinV2Backbone',
        arch='tiny',
        window_size=16,
        pretrained_window_sizes=(16, 16, 16, 8),
        drop_path_rate=0.3,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained),
    ),
)
# As the official V2 training code: no weight decay on logit scales, position bias MLPs, q / v biases.
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
