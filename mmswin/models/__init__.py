"""Importing this package registers every mmswin model in :data:`mmswin.registry.MODELS`."""

from .backbones import SwinBackbone, SwinV2Backbone

__all__ = ['SwinBackbone', 'SwinV2Backbone']
