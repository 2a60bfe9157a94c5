from .attention import PositionBiasInputs, WindowMSA, WindowMSAV2
from .patch import PatchEmbed, PatchMerging, PatchMergingV2
from .swin_block import SwinBlock, SwinBlockV2
from .window_layout import WindowLayout, WindowLayoutCache, build_window_layout

__all__ = [
    'PatchEmbed',
    'PatchMerging',
    'PatchMergingV2',
    'PositionBiasInputs',
    'SwinBlock',
    'SwinBlockV2',
    'WindowLayout',
    'WindowLayoutCache',
    'WindowMSA',
    'WindowMSAV2',
    'build_window_layout',
]
