# MMSegmentation runtime: iteration-based hooks, logging with ETA, checkpoints, visualizer.
default_scope = 'mmseg'
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=16000),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'),
)
env_cfg = dict(cudnn_benchmark=True, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0), dist_cfg=dict())
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
# Resumed runs repeat an uninterrupted run's randomness (mmswin/engine/iter_seed.py);
# a NaN/inf loss stops the run naming the iteration (mmswin/engine/finite_loss.py).
custom_hooks = [dict(type='mmswin.IterSeedHook'), dict(type='mmswin.FiniteLossHook')]
