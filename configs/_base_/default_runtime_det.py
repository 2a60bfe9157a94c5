# MMDetection runtime: hooks, logging with ETA, checkpoints, visualizer.
default_scope = 'mmdet'
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'),
)
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0), dist_cfg=dict())
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
# Resumed runs repeat an uninterrupted run's randomness (mmswin/engine/iter_seed.py);
# a NaN/inf loss stops the run naming the iteration (mmswin/engine/finite_loss.py).
custom_hooks = [dict(type='mmswin.IterSeedHook'), dict(type='mmswin.FiniteLossHook')]
