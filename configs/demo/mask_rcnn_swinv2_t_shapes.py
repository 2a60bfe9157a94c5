# Demo: Mask R-CNN with a slim SwinV2Backbone on the synthetic "shapes" COCO set, the recipe of
# configs/demo/mask_rcnn_swin_t_shapes.py with the backbone swapped (generated into data/coco_shapes
# by tools/train.py when missing). Trained from scratch on a 2-core CPU in minutes.
_base_ = ['mask_rcnn_swin_t_shapes.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmswin.SwinV2Backbone',
        arch=dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8)),
        # 128-pixel images give 32x32 tokens: window 4 tiles every stage without padding.
        window_size=4,
        mask_padding=True,
        drop_path_rate=0.0,
        out_indices=(0, 1, 2, 3),
    ),
)
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
