"""Importing this package registers every mmswin model in :data:`mmswin.registry.MODELS`."""

from .backbones import SwinBackbone

__all__ = ['SwinBackbone']
