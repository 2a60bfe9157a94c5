"""Resizing the position parameters of a checkpoint to the model's window and grid.

Both resizes are bicubic, on the 2-D grid the parameter is defined on:
the relative position bias table on its ``(2M - 1) x (2M - 1)`` grid of offsets,
the absolute position embedding on its patch grid.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor


def table_window_size(table: Tensor) -> int:
    """Window side ``M`` of a ``[(2M - 1)**2, num_heads]`` relative position bias table."""
    if table.dim() != 2:
        raise ValueError(
            f'a relative position bias table is 2-D [(2M-1)**2, num_heads], got shape {tuple(table.shape)}'
        )
    side = math.isqrt(table.shape[0])
    if side * side != table.shape[0] or side % 2 == 0:
        raise ValueError(
            f'a relative position bias table has (2M-1)**2 rows for a square window M, got {table.shape[0]} rows'
        )
    return (side + 1) // 2


def resize_relative_position_bias_table(table: Tensor, window_size: int) -> Tensor:
    """``[(2M - 1)**2, nH] -> [(2W - 1)**2, nH]`` for window side ``W``, bicubic.

    Row ``(dy + M - 1) * (2M - 1) + (dx + M - 1)`` holds the bias of offset ``(dy, dx)``,
    so the table is a row-major ``(2M - 1) x (2M - 1)`` image with one channel per head.
    Returns ``table`` itself when the window already matches.
    """
    old_window = table_window_size(table)
    if old_window == window_size:
        return table
    old_side, new_side = 2 * old_window - 1, 2 * window_size - 1
    num_heads = table.shape[1]
    with torch.no_grad():
        grid = table.detach().float().t().reshape(1, num_heads, old_side, old_side)
        grid = F.interpolate(grid, size=(new_side, new_side), mode='bicubic', align_corners=False)
        return grid.reshape(num_heads, new_side * new_side).t().contiguous().to(table.dtype)


def position_embedding_to_grid(pos_embed: Tensor, grid: Optional[tuple[int, int]] = None) -> Tensor:
    """An absolute position embedding as ``[1, C, H, W]``.

    Accepts ``[1, C, H, W]`` (returned as is) or ``[1, N, C]`` tokens in row-major order
    (the official classification and OpenMMLab layout). ``N`` must equal ``H * W`` of
    ``grid`` when given, or be a perfect square otherwise.
    """
    if pos_embed.dim() == 4:
        return pos_embed
    if pos_embed.dim() != 3 or pos_embed.shape[0] != 1:
        raise ValueError(
            f'an absolute position embedding is [1, N, C] or [1, C, H, W], got shape {tuple(pos_embed.shape)}'
        )
    num_tokens, channels = pos_embed.shape[1:]
    if grid is None or grid[0] * grid[1] != num_tokens:
        side = math.isqrt(num_tokens)
        if side * side != num_tokens:
            raise ValueError(
                f'cannot tell the patch grid of an absolute position embedding with {num_tokens} '
                f'tokens (not square{"" if grid is None else f", and the model grid is {grid}"})'
            )
        grid = (side, side)
    return pos_embed.reshape(1, grid[0], grid[1], channels).permute(0, 3, 1, 2).contiguous()


def resize_position_embedding(pos_embed: Tensor, grid: tuple[int, int]) -> Tensor:
    """``[1, C, h, w] -> [1, C, H, W]`` bicubic; returns ``pos_embed`` itself when sizes match."""
    if tuple(pos_embed.shape[2:]) == tuple(grid):
        return pos_embed
    with torch.no_grad():
        resized = F.interpolate(pos_embed.detach().float(), size=tuple(grid), mode='bicubic', align_corners=False)
        return resized.to(pos_embed.dtype)
