# DINO 5-scale, Swin-L (window 12, ImageNet-22k at 384), 36 epochs (lr x0.1 at 27 and 33), COCO 2017.
# Reproduces: MMDetection dino-5scale_swin-l_8xb2-36e_coco: 58.4 box AP (configs/dino/metafile.yml).
_base_ = './dino_5scale_swin_l_12e.py'
max_epochs = 36
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
param_scheduler = [dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 33], gamma=0.1)]
