"""The ``mmswin`` model registry.

A child of MMEngine's root ``MODELS`` registry, so a config whose ``default_scope`` is
``mmdet`` or ``mmseg`` can name ``type='mmswin.SwinBackbone'`` and MMEngine finds it here.
"""
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmswin', locations=['mmswin.models'])
