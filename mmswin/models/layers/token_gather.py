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

While the model is traced, compiled or exported, and for the maps of traced layouts,
the plain ``index_select`` / ``cat`` ops run instead (the same forward, so graphs and
exports are unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from mmswin.kernels import is_transforming


@dataclass(frozen=True, eq=False)
class RowMap:
    """Where the ``R`` rows of one order stand among the ``P >= R`` rows of another.

    ``rows``: ``[R]`` long, the row of each source token in the padded order.
    ``from_source``: ``[P]`` long, for each padded row the source row it holds, ``R``
    where it holds padding. ``traced``: the indices belong to a traced layout (built in
    a graph), for which only the plain ops run.
    """

    rows: Tensor
    from_source: Tensor
    traced: bool = False

    @property
    def is_permutation(self) -> bool:
        """Whether no row of the padded order is padding (``P == R``). Eager code only:
        in a traced or exported graph the comparison of sizes would make a guard."""
        return self.from_source.numel() == self.rows.numel()

    @cached_property
    def gather_with_padding(self) -> tuple[Tensor, Tensor]:
        """Eager code only: ``from_source`` with every padding row pointing at source row
        0 instead of ``R`` (``[P]`` long), and the padding rows' positions (``[P - R]``
        long), kept with the map: :func:`pad_rows` gathers by the first and zeros the
        second, with no zero row appended to the source."""
        real = self.rows.numel()
        # Sorted, the P - R padding entries (value R) come last: a size known without
        # reading the values (no nonzero), so it works on every device, meta included.
        padding = torch.argsort(self.from_source, stable=True)[real:]
        return self.from_source.masked_fill(self.from_source == real, 0), padding


def crop_rows(padded: Tensor, row_map: RowMap) -> Tensor:
    """``[B, P, C]`` -> ``[B, R, C]``: the rows ``row_map.rows`` of ``padded``."""
    if row_map.traced or is_transforming(padded):
        return padded.index_select(1, row_map.rows)
    return _CropRows.apply(padded, row_map)


def pad_rows(source: Tensor, row_map: RowMap) -> Tensor:
    """``[B, R, C]`` -> ``[B, P, C]``: each source row at its place ``row_map.rows``,
    zeros in the padding rows."""
    if row_map.traced or is_transforming(source):
        return _with_zero_row(source).index_select(1, row_map.from_source)
    return _PadRows.apply(source, row_map)


def _with_zero_row(source: Tensor) -> Tensor:
    """``source`` with one more row of zeros (row ``R``, where ``from_source`` points
    for padding)."""
    return torch.cat([source, source.new_zeros(source.shape[0], 1, source.shape[2])], 1)


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
    def forward(ctx, source: Tensor, row_map: RowMap) -> Tensor:
        ctx.row_map = row_map
        if row_map.is_permutation:
            return source.index_select(1, row_map.from_source)
        # One gather and a fill of the padding rows: appending a zero row would copy
        # the whole source once more.
        gather, padding = row_map.gather_with_padding
        return source.index_select(1, gather).index_fill_(1, padding, 0)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return crop_rows(grad, ctx.row_map), None
