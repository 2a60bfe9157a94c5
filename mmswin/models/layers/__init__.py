from .patch import PatchEmbed, PatchMerging
from .window_attention import WindowLayout, WindowMSA, get_window_layout

__all__ = ['PatchEmbed', 'PatchMerging', 'WindowLayout', 'WindowMSA', 'get_window_layout']
