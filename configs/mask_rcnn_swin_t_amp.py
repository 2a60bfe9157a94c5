# Mask R-CNN, Swin-T, FPN, 1x, mixed precision (fp16 on CUDA with dynamic loss scaling).
# Reproduces: MMDetection's Mask R-CNN Swin-T 1x fp16: 42.7 box AP / 39.3 mask AP.
_base_ = './mask_rcnn_swin_t.py'
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale='dynamic')
