"""Moves of token rows between two orders whose backward is a gather too.

A Swin block moves tokens between the real tokens of a stage (``[B, R, C]``, in the
order of :attr:`WindowLayout.real_tokens`) and a window order of the padded grid
(``[B, P, C]``, regular or shifted), and, on an unpadded grid, between the regular and
the shifted window order. Each move is a gather along dim 1. ``index_select``'s own
backward scatters with ``index_add_``, which on a CPU runs one small add per row (a
single thread) and on CUDA adds with atomics (run-to-run differences). Both moves here
are permutations with padding, so each one's adjoint is the other move, and forward
and backward are gathers: :func:`crop_rows` (padded -> real) and :func:`pad_rows`
(real -> padded) are each other's backward.

While the model is traced, compiled or exported the plain ``index_select`` / ``cat``
ops run instead (the same forward, so graphs and exports are unchanged).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from mmswin.kernels import is_transforming


class RowMap(NamedTuple):
    """Where the ``R`` rows of one order stand among the ``P`` rows of another.

    ``rows``: ``[R]`` long, the row of each source token in the padded order.
    ``from_source``: ``[P]`` long, for each padded row the source row it holds, ``R``
    where it holds padding. ``padding_rows``: ``[P - R]`` long, the padded rows that
    hold no source token (empty for a permutation).
    """

    rows: Tensor
    from_source: Tensor
    padding_rows: Tensor

    @classmethod
    def build(cls, rows: Tensor, from_source: Tensor) -> RowMap:
        """The map of ``rows`` / ``from_source``, with the padding rows found."""
        padding = torch.nonzero(from_source == rows.numel()).view(-1)
        return cls(rows, from_source, padding)


def crop_rows(padded: Tensor, row_map: RowMap) -> Tensor:
    """``[B, P, C]`` -> ``[B, R, C]``: the rows ``row_map.rows`` of ``padded``."""
    if is_transforming(padded):
        return padded.index_select(1, row_map.rows)
    return _CropRows.apply(padded, row_map)


def pad_rows(source: Tensor, row_map: RowMap, fill: Optional[Tensor] = None) -> Tensor:
    """``[B, R, C]`` -> ``[B, P, C]``: each source row at its place ``row_map.rows``, the
    padding rows equal to ``fill`` (a ``[C]`` vector, cast to ``source``'s dtype; zero
    when None). ``fill`` gets the gradient of every padding row."""
    if fill is not None:
        fill = fill.to(source.dtype)
    if is_transforming(source):
        return _with_fill_row(source, fill).index_select(1, row_map.from_source)
    return _PadRows.apply(source, row_map, fill)


def _with_fill_row(source: Tensor, fill: Optional[Tensor]) -> Tensor:
    """``source`` with one more row: ``fill``, or zeros."""
    batch, _, channels = source.shape
    row = source.new_zeros(batch, 1, channels) if fill is None else fill.view(1, 1, channels).expand(batch, 1, channels)
    return torch.cat([source, row], 1)


class _CropRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, padded: Tensor, row_map: RowMap) -> Tensor:
        ctx.row_map = row_map
        return padded.index_select(1, row_map.rows)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return pad_rows(grad, ctx.row_map), None


class _PadRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, source: Tensor, row_map: RowMap, fill: Optional[Tensor]) -> Tensor:
        ctx.row_map = row_map
        ctx.fill_shape = None if fill is None else fill.shape
        if row_map.padding_rows.numel() == 0:  # a permutation: no fill row to append
            return source.index_select(1, row_map.from_source)
        return _with_fill_row(source, fill).index_select(1, row_map.from_source)

    @staticmethod
    def backward(ctx, grad: Tensor):
        grad_source = crop_rows(grad, ctx.row_map)
        grad_fill = None
        if ctx.fill_shape is not None and ctx.needs_input_grad[2]:
            grad_fill = grad.index_select(1, ctx.row_map.padding_rows).sum((0, 1)).view(ctx.fill_shape)
        return grad_source, None, grad_fill
