# Mask R-CNN, Swin-T, FPN, 3x, multi-scale + crop, COCO 2017, with layer-wise lr decay 0.9:
# block k of 12 trains at 1e-4 * 0.9 ** (13 - (k + 1)), the patch embedding at 1e-4 * 0.9 ** 13,
# the neck and heads at 1e-4; norms and position tables without weight decay
# (mmswin/engine/layer_decay.py, README "Layer-wise lr decay").
# Published figure: none; a recipe variant of mask_rcnn_swin_t_3x.py (46.0 box / 41.6 mask AP).
_base_ = './mask_rcnn_swin_t_3x.py'
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='mmswin.SwinLayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(decay_rate=0.9),
)
