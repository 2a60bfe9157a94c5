"""CPU copies between Swin's layouts, each in one pass: grid <-> window order with the
padding and the crop folded in, and channels-last -> channels-first outputs.

Chosen by :mod:`mmswin.kernels` for plain eager CPU tensors; elsewhere (GPUs, tracing,
compiling, export) the plain ``F.pad`` / ``permute`` copies run.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _grid_and_window_pieces(grid: Tensor, windows: Tensor, window_size: int, height: int, width: int):
    """Pairs of views, ``(piece of grid, same tokens in windows)``, that together cover the
    unpadded grid ``[B, height, width, C]`` exactly; ``windows`` is ``[B, L, C]`` in regular
    window order of the grid padded to a multiple of the window. At most four pairs: whole
    windows, and the partial last window row / column."""
    M = window_size
    rows_of_windows, last_rows = divmod(height, M)
    cols_of_windows, last_cols = divmod(width, M)
    # [B, window row, row in window, window column, column in window, C]
    blocks = windows.view(-1, -(-height // M), -(-width // M), M, M, windows.shape[-1]).permute(0, 1, 3, 2, 4, 5)
    row_parts = [(0, rows_of_windows, M)] if rows_of_windows else []
    row_parts += [(rows_of_windows, 1, last_rows)] if last_rows else []
    col_parts = [(0, cols_of_windows, M)] if cols_of_windows else []
    col_parts += [(cols_of_windows, 1, last_cols)] if last_cols else []
    for first_row, num_rows, rows in row_parts:
        for first_col, num_cols, cols in col_parts:
            grid_piece = grid[
                :, first_row * M : first_row * M + num_rows * rows, first_col * M : first_col * M + num_cols * cols
            ]
            grid_piece = grid_piece.unflatten(1, (num_rows, rows)).unflatten(3, (num_cols, cols))
            yield (
                grid_piece,
                blocks[:, first_row : first_row + num_rows, :rows, first_col : first_col + num_cols, :cols],
            )


def pad_and_partition(x: Tensor, window_size: int, height: int, width: int) -> Tensor:
    """``[B, height, width, C]`` -> ``[B, L, C]`` in regular window order of the grid
    zero-padded to a multiple of the window, in one copy: partition and the padding's zeros
    go straight into the output (F.pad would fill and copy the whole grid first)."""
    M = window_size
    rows, cols = -(-height // M), -(-width // M)
    windows = x.new_empty(x.shape[0], rows * cols * M * M, x.shape[-1])
    blocks = windows.view(-1, rows, cols, M, M, x.shape[-1])
    if height % M:
        blocks[:, -1, :, height % M :].zero_()
    if width % M:
        blocks[:, :, -1, :, width % M :].zero_()
    for grid_piece, window_piece in _grid_and_window_pieces(x, windows, M, height, width):
        window_piece.copy_(grid_piece)
    return windows


def partition_reverse_and_crop(windows: Tensor, window_size: int, height: int, width: int) -> Tensor:
    """Inverse of :func:`pad_and_partition`: ``[B, L, C]`` -> ``[B, height, width, C]``, the
    padding dropped, in one copy."""
    grid = windows.new_empty(windows.shape[0], height, width, windows.shape[-1])
    for grid_piece, window_piece in _grid_and_window_pieces(grid, windows, window_size, height, width):
        grid_piece.copy_(window_piece)
    return grid


def _relayout(tensor: Tensor, to_windows: bool, window_size: int, height: int, width: int) -> Tensor:
    if to_windows:
        return pad_and_partition(tensor, window_size, height, width)
    return partition_reverse_and_crop(tensor, window_size, height, width)


class Relayout(torch.autograd.Function):
    """Grid -> window order (``to_windows``) or back, in one copy; the gradient goes the
    other way (padding and crop are each other's backward: the padding gets none)."""

    @staticmethod
    def forward(ctx, tensor: Tensor, to_windows: bool, window_size: int, height: int, width: int) -> Tensor:
        ctx.backward_args = not to_windows, window_size, height, width
        return _relayout(tensor, to_windows, window_size, height, width)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return _relayout(grad, *ctx.backward_args), None, None, None, None


class ChannelsFirst(torch.autograd.Function):
    """``[B, H, W, C]`` -> contiguous ``[B, C, H, W]`` (the stage outputs).

    Copied image by image as a 2-D ``[H * W, C]`` transpose, which torch copies in
    cache-sized tiles (a 4-D permute copy is not tiled). The gradient goes back the same
    way.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        B, H, W, C = x.shape
        return _transpose_images(x, H * W, C).view(B, C, H, W)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        B, C, H, W = grad.shape
        return _transpose_images(grad, C, H * W).view(B, H, W, C)


def _transpose_images(x: Tensor, rows: int, cols: int) -> Tensor:
    """Each image of ``x`` read as a ``[rows, cols]`` matrix -> ``[B, cols, rows]``, contiguous."""
    x = x.contiguous()
    out = x.new_empty(x.shape[0], cols, rows)
    for image, transposed in zip(x, out):
        transposed.copy_(image.view(rows, cols).t())
    return out
