from .patch import PatchEmbed, PatchMerging
from .swin_block import SwinBlock
from .window_attention import WindowLayout, WindowMSA, get_window_layout

__all__ = ['PatchEmbed', 'PatchMerging', 'SwinBlock', 'WindowLayout', 'WindowMSA', 'get_window_layout']
