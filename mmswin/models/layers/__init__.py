from .attention import WindowMSA
from .patch import PatchEmbed, PatchMerging
from .swin_block import SwinBlock
from .window_layout import WindowLayout, WindowLayoutCache, build_window_layout

__all__ = [
    'PatchEmbed',
    'PatchMerging',
    'SwinBlock',
    'WindowLayout',
    'WindowLayoutCache',
    'WindowMSA',
    'build_window_layout',
]
