# Mask R-CNN, Swin-T, FPN, 3x schedule (36 epochs), multi-scale + crop training, COCO 2017.
# Reproduces: official Swin detection repo, Mask R-CNN Swin-T 3x: 46.0 box AP / 41.6 mask AP.
_base_ = ['./mask_rcnn_swin_t.py', '_base_/schedules/schedule_3x.py']
