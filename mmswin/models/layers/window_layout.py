"""Window layout of a stage's token grid: padding, window order, the cyclic shift's
gathers and the additive masks.

Token layout. A Swin stage keeps its tokens in *window order* from its first block to
its last: the token grid is padded once to a multiple of the window and laid out as
``[B, num_windows * N, C]`` with ``N = window_size ** 2``. A regular (W-MSA) block then
needs no copy, and a shifted (SW-MSA) block needs one gather into the shifted window
order and one gather back, instead of the pad / roll / partition / reverse / roll /
crop copies of a block that works on the image grid. The gather indices, the shift
mask and the padding mask depend only on the grid size: :class:`WindowLayoutCache`
keeps them per size for the stage that owns it.

Numerically this equals the reference formulation "pad the normalised tokens with
zeros, roll by ``-shift``, partition, attend with the shift mask": a block normalises
the real tokens alone and pads them with zeros in its window order
(:meth:`WindowLayout.real_row_map`, :func:`~.token_gather.pad_rows`).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from mmswin.kernels import cpu_relayout, is_transforming, uses_cpu_layout_kernels

from .token_gather import RowMap

# Additive mask value for forbidden query/key pairs. Large enough that the pair's
# softmax weight is zero in fp32/bf16/fp16, small enough that bias + two masks stay
# finite in fp16, so no row can turn into NaN.
MASK_VALUE = -1.0e4


def padded_size(size, window_size: int):
    """``size`` rounded up to a multiple of ``window_size``: an int, or a symbolic size
    while traced. Floor division of non-negative sizes only: the ONNX exporter turns a
    symbolic ``//`` into a truncating division, which rounds a negative quotient the
    wrong way."""
    return (size + window_size - 1) // window_size * window_size


def window_partition(x: Tensor, window_size: int) -> Tensor:
    """Split a padded grid into windows.

    ``[B, H, W, C] -> [B, num_windows * window_size**2, C]``, windows in row-major
    order, tokens row-major inside each window. ``H`` and ``W`` must be multiples of
    ``window_size``. Always a new tensor (a reshape would be a view of ``x`` for a grid
    one window wide, and a graph traced for symbolic sizes would depend on which).
    """
    B, H, W, C = x.shape
    x = x.view(B, H // window_size, window_size, W // window_size, window_size, C)
    return x.permute(0, 1, 3, 2, 4, 5).clone(memory_format=torch.contiguous_format).view(B, H * W, C)


def window_reverse(windows: Tensor, window_size: int, height: int, width: int) -> Tensor:
    """Inverse of :func:`window_partition`: ``[B, H * W, C] -> [B, H, W, C]``, a new tensor."""
    B, _, C = windows.shape
    x = windows.view(B, height // window_size, width // window_size, window_size, window_size, C)
    return x.permute(0, 1, 3, 2, 4, 5).clone(memory_format=torch.contiguous_format).view(B, height, width, C)


def shift_region_labels(
    padded_height: int, padded_width: int, window_size: int, shift_size: int, device: torch.device | str = 'cpu'
) -> Tensor:
    """Label each position of the rolled, padded grid with the image region it came from.

    After ``roll(-shift)`` the last window row and column hold tokens from up to three
    regions each (bottom of the image, wrapped-around top, padding stays with bottom);
    tokens may only attend to tokens with the same label. Returns ``[Hp, Wp]`` long.
    Tensor ops alone, so the sizes may be symbolic (traced layouts).
    """

    def band_labels(size: int) -> Tensor:
        return shift_band_labels(torch.arange(size, device=device), size, window_size, shift_size)

    return band_labels(padded_height)[:, None] * 3 + band_labels(padded_width)[None, :]


def shift_band_labels(index: Tensor, padded_size, window_size: int, shift_size: int) -> Tensor:
    """For row (or column) indices of the rolled, padded grid: 0 before the last window,
    1 in it before the shift, 2 after (:func:`shift_region_labels` along one axis)."""
    return (index >= padded_size - window_size).long() + (index >= padded_size - shift_size).long()


def padding_mask(valid: Tensor) -> Tensor:
    """``[nW, N]`` bool (True for real tokens) -> ``[nW, N, N]`` bool, True where a real
    query would see a padded key. Padded queries (whose output is thrown away) keep every
    key, so no row is ever fully masked."""
    return valid[:, :, None] & ~valid[:, None, :]


@dataclass
class WindowLayout:
    """Everything a stage needs to attend in windows on a grid of one size.

    Built once per (height, width, window, shift, mask_padding, device) by
    :class:`WindowLayoutCache`. All token indices refer to the *regular* window order
    of the padded grid (``window_partition`` of the zero-padded ``[B, Hp, Wp, C]``).
    """

    height: int
    width: int
    window_size: int
    shift_size: int
    # [1, L, 1] bool, True for real tokens; None when the grid needs no padding.
    valid_tokens: Optional[Tensor]
    # [L] long: regular order -> shifted order, and back. None when shift_size == 0.
    to_shifted: Optional[Tensor]
    from_shifted: Optional[Tensor]
    # [num_windows, N, N] float32 additive masks; None when nothing is masked.
    regular_mask: Optional[Tensor]
    shifted_mask: Optional[Tensor]
    # [num_windows] long: for each window of the shifted order, its row-major index in
    # the rolled grid. Windows whose mask is all zero come first, so that attention can
    # use the bias alone for them. None when shift_size == 0.
    shifted_window_order: Optional[Tensor] = None
    # How many leading windows of the regular / shifted order have an all-zero mask.
    regular_mask_free: int = 0
    shifted_mask_free: int = 0
    # Traced layouts only (build_traceable_layout), which relayout by gathers: [L] long,
    # the row-major position in the padded grid of each token in regular window order;
    # [H * W] long, the window-order index of each real position of the grid.
    window_to_grid: Optional[Tensor] = None
    grid_to_window: Optional[Tensor] = None
    # Padded grids only: [Lr] long, the regular-order index of each real token (in a
    # fixed order of the real tokens); [L] long, for each token of the regular order, its
    # row among the real tokens, or Lr (the zero row appended to them) for padding.
    real_tokens: Optional[Tensor] = None
    from_real: Optional[Tensor] = None
    _cast_masks: dict = field(default_factory=dict, repr=False)
    _valid_in_order: dict = field(default_factory=dict, repr=False)
    _derived: dict = field(default_factory=dict, repr=False)
    _chunks: dict = field(default_factory=dict, repr=False)

    @property
    def padded_height(self) -> int:
        """The height of the grid zero-padded to whole windows."""
        return padded_size(self.height, self.window_size)

    @property
    def padded_width(self) -> int:
        """The width of the grid zero-padded to whole windows."""
        return padded_size(self.width, self.window_size)

    @property
    def num_windows(self) -> int:
        return (self.padded_height // self.window_size) * (self.padded_width // self.window_size)

    @property
    def needs_padding(self) -> bool:
        return self.valid_tokens is not None

    def attn_mask(self, shifted: bool, dtype: torch.dtype) -> Optional[Tensor]:
        """The additive mask for regular or shifted windows, in ``dtype`` (cached)."""
        mask = self.shifted_mask if shifted else self.regular_mask
        if mask is None or mask.dtype == dtype:
            return mask
        key = (shifted, dtype)
        if key not in self._cast_masks:
            self._cast_masks[key] = mask.to(dtype)
        return self._cast_masks[key]

    def to_windows(self, x: Tensor) -> Tensor:
        """``[B, H, W, C]`` grid -> ``[B, L, C]`` zero-padded, in regular window order
        (always a new tensor)."""
        if self.window_to_grid is not None:
            x = F.pad(x, (0, 0, 0, self.padded_width - self.width, 0, self.padded_height - self.height))
            return x.flatten(1, 2).index_select(1, self.window_to_grid)
        if self.needs_padding and uses_cpu_layout_kernels(x):
            return cpu_relayout(x, True, self.window_size, self.height, self.width)
        if self.needs_padding:
            x = F.pad(x, (0, 0, 0, self.padded_width - self.width, 0, self.padded_height - self.height))
        return window_partition(x, self.window_size)

    def to_grid(self, windows: Tensor) -> Tensor:
        """``[B, L, C]`` in regular window order -> ``[B, H, W, C]``, padding cropped."""
        if self.grid_to_window is not None:
            return windows.index_select(1, self.grid_to_window).unflatten(1, (self.height, self.width))
        if self.needs_padding and uses_cpu_layout_kernels(windows):
            return cpu_relayout(windows, False, self.window_size, self.height, self.width)
        grid = window_reverse(windows, self.window_size, self.padded_height, self.padded_width)
        if self.needs_padding:
            grid = grid[:, : self.height, : self.width].contiguous()
        return grid

    def valid_mask(self, shifted: bool) -> Optional[Tensor]:
        """``[L]`` bool, True for real tokens, in regular or shifted window order (cached);
        None when the grid needs no padding."""
        if self.valid_tokens is None:
            return None
        if shifted not in self._valid_in_order:
            valid = self.valid_tokens.view(-1)
            self._valid_in_order[shifted] = valid[self.to_shifted] if shifted else valid
        return self._valid_in_order[shifted]

    def real_row_map(self, shifted: bool) -> Optional[RowMap]:
        """Where a block's stream of tokens stands in its regular or shifted window
        order, for :func:`~.token_gather.crop_rows` and :func:`~.token_gather.pad_rows`.

        The stream is the real tokens in :attr:`real_tokens`' order on a padded grid, and
        every token in regular window order on an unpadded one (the map is then the
        shift's permutation, or None for the regular order, which needs no move).
        """
        traced = self.window_to_grid is not None
        if self.real_tokens is None:
            if not shifted:
                return None
            return self._derive('shifted_rows', lambda: RowMap(self.from_shifted, self.to_shifted, traced))
        if not shifted:
            return self._derive('real_rows', lambda: RowMap(self.real_tokens, self.from_real, traced))
        return self._derive(
            'real_rows_shifted',
            lambda: RowMap(
                self.from_shifted.index_select(0, self.real_tokens),
                self.from_real.index_select(0, self.to_shifted),
                traced,
            ),
        )

    def _derive(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, kept under ``name`` for the next call; computed again on every
        call for a traced layout, whose tensors belong to the graph being built."""
        if self.window_to_grid is not None:  # traced: nothing is kept
            return compute()
        if name not in self._derived:
            self._derived[name] = compute()
        return self._derived[name]

    def zero_padding(self, tokens: Tensor) -> Tensor:
        """Set padded tokens to zero, as the reference pads normalised tokens with zeros."""
        if self.valid_tokens is None:
            return tokens
        return tokens.masked_fill(~self.valid_tokens, 0.0)

    def window_chunks(self, shifted: bool, max_windows: int) -> list[WindowChunk]:
        """Split one image's windows, in regular or shifted order, into runs of at most
        ``max_windows`` (cached). No chunk mixes mask-free and masked windows."""
        key = (shifted, max_windows)
        if key not in self._chunks:
            self._chunks[key] = _plan_chunks(self, shifted, max_windows)
        return self._chunks[key]


@dataclass(frozen=True)
class WindowChunk:
    """Windows ``first:last`` of one image, in the regular or the shifted window order.

    ``rows`` are the chunk's ``n = (last - first) * N`` token rows in that order;
    ``gather`` (``[n]`` long) says where they sit in the regular order, None when that
    is ``rows`` itself (regular order). ``valid_rows`` (``[nv]`` long, rows within the
    chunk) lists its real tokens, None when none is padding; ``scatter`` (``[nv]``
    long) is where those real tokens sit in the regular order, None when that is
    ``rows`` (regular order, no padding). ``packed`` is the chunk's range in a buffer
    that holds only the real tokens, chunk after chunk.
    """

    first: int
    last: int
    masked: bool
    rows: slice
    gather: Optional[Tensor]
    valid_rows: Optional[Tensor]
    scatter: Optional[Tensor]
    packed: slice


def _plan_chunks(layout: WindowLayout, shifted: bool, max_windows: int) -> list[WindowChunk]:
    N = layout.window_size * layout.window_size
    mask_free = layout.shifted_mask_free if shifted else layout.regular_mask_free
    valid = layout.valid_mask(shifted)
    chunks = []
    packed_start = 0
    for start, stop, masked in ((0, mask_free, False), (mask_free, layout.num_windows, True)):
        for first in range(start, stop, max_windows):
            last = min(stop, first + max_windows)
            rows = slice(first * N, last * N)
            gather = layout.to_shifted[rows] if shifted else None
            valid_rows = scatter = None
            num_valid = (last - first) * N
            if valid is not None and not bool(valid[rows].all()):
                valid_rows = torch.nonzero(valid[rows]).view(-1)
                scatter = (gather if shifted else torch.arange(rows.start, rows.stop, device=valid.device))[valid_rows]
                num_valid = valid_rows.numel()
            elif shifted:
                scatter = gather
            chunks.append(
                WindowChunk(
                    first,
                    last,
                    masked,
                    rows,
                    gather,
                    valid_rows,
                    scatter,
                    slice(packed_start, packed_start + num_valid),
                )
            )
            packed_start += num_valid
    return chunks


def build_window_layout(
    height: int,
    width: int,
    window_size: int,
    shift_size: int,
    mask_padding: bool = False,
    device: torch.device | str = 'cpu',
) -> WindowLayout:
    """The :class:`WindowLayout` of a ``height x width`` grid (ints), built now, on
    ``device``. Windows whose mask is all zero lead each order (see the fields)."""
    device = torch.device(device)
    padded_height = padded_size(height, window_size)
    padded_width = padded_size(width, window_size)
    num_tokens = padded_height * padded_width
    N = window_size * window_size

    def in_windows(grid: Tensor) -> Tensor:  # [Hp, Wp] -> [nW, N]
        return window_partition(grid[None, :, :, None], window_size).view(-1, N)

    valid_grid = torch.zeros(padded_height, padded_width, dtype=torch.bool)
    valid_grid[:height, :width] = True
    needs_padding = padded_height != height or padded_width != width
    valid_regular = in_windows(valid_grid)  # [nW, N]
    regular_forbidden = padding_mask(valid_regular) if (mask_padding and needs_padding) else None

    to_shifted = from_shifted = shifted_forbidden = shifted_window_order = None
    num_windows = num_tokens // N
    shifted_mask_free = num_windows
    if shift_size > 0:
        # Position (h, w) of the rolled grid holds the token from (h + s, w + s).
        regular_index = window_reverse(
            torch.arange(num_tokens).view(1, num_tokens, 1), window_size, padded_height, padded_width
        )[0, :, :, 0]
        rolled = torch.roll(regular_index, shifts=(-shift_size, -shift_size), dims=(0, 1))
        to_shifted = in_windows(rolled)  # [nW, N], windows in row-major order
        labels = in_windows(shift_region_labels(padded_height, padded_width, window_size, shift_size))
        shifted_forbidden = labels[:, :, None] != labels[:, None, :]
        if mask_padding and needs_padding:
            valid_shifted = valid_regular.reshape(-1)[to_shifted.reshape(-1)].view(-1, N)
            shifted_forbidden = shifted_forbidden | padding_mask(valid_shifted)
        # Mask-free windows first (all but the last window row and column, in general).
        masked = shifted_forbidden.flatten(1).any(1)
        shifted_window_order = torch.cat([torch.nonzero(~masked).view(-1), torch.nonzero(masked).view(-1)])
        shifted_mask_free = int((~masked).sum())
        to_shifted = to_shifted[shifted_window_order].reshape(-1)
        from_shifted = torch.argsort(to_shifted)
        shifted_forbidden = shifted_forbidden[shifted_window_order]

    def leading_mask_free(forbidden: Optional[Tensor]) -> int:
        if forbidden is None:
            return num_windows
        masked = forbidden.flatten(1).any(1)
        return int(masked.int().argmax()) if bool(masked.any()) else num_windows

    def additive(forbidden: Optional[Tensor]) -> Optional[Tensor]:
        if forbidden is None or not bool(forbidden.any()):
            return None
        return torch.zeros(forbidden.shape).masked_fill_(forbidden, MASK_VALUE).to(device)

    real_tokens = from_real = None
    if needs_padding:
        real_tokens = torch.nonzero(valid_regular.view(-1)).view(-1)
        from_real = torch.full((num_tokens,), real_tokens.numel(), dtype=torch.long)
        from_real[real_tokens] = torch.arange(real_tokens.numel())
        real_tokens, from_real = real_tokens.to(device), from_real.to(device)

    return WindowLayout(
        height=height,
        width=width,
        window_size=window_size,
        shift_size=shift_size,
        valid_tokens=valid_regular.view(1, -1, 1).to(device) if needs_padding else None,
        to_shifted=None if to_shifted is None else to_shifted.to(device),
        from_shifted=None if from_shifted is None else from_shifted.to(device),
        regular_mask=additive(regular_forbidden),
        shifted_mask=additive(shifted_forbidden),
        shifted_window_order=None if shifted_window_order is None else shifted_window_order.to(device),
        regular_mask_free=leading_mask_free(regular_forbidden),
        shifted_mask_free=shifted_mask_free
        if shifted_forbidden is not None and shifted_forbidden.any()
        else num_windows,
        real_tokens=real_tokens,
        from_real=from_real,
    )


def build_traceable_layout(
    height, width, window_size: int, shift_size: int, mask_padding: bool, device: torch.device
) -> WindowLayout:
    """The :class:`WindowLayout` built by tensor ops alone, for tracing, compiling and
    export: ``height`` and ``width`` may be symbolic, and nothing depends on the data.

    It always pads (by zero where the grid fits), always carries the shift mask of a
    shifted layout and keeps the windows of the shifted order in row-major order, so one
    graph serves every input size; the whole-tensor block gives the same result as with
    :class:`WindowLayoutCache`'s layout.
    """
    M, s = window_size, shift_size
    padded_height = padded_size(height, M)
    padded_width = padded_size(width, M)
    N = M * M
    window_columns = padded_width // M
    num_windows = (padded_height // M) * window_columns

    def additive(forbidden: Tensor) -> Tensor:
        return torch.where(forbidden, MASK_VALUE, 0.0).float()

    def window_order_index(row: Tensor, col: Tensor) -> Tensor:  # padded-grid position -> window-order index
        return ((row // M) * window_columns + col // M) * N + (row % M) * M + col % M

    def grid_position(order: Tensor) -> tuple[Tensor, Tensor]:  # window-order index -> (row, col)
        window, inside = order // N, order % N
        window_row = window // window_columns
        return window_row * M + inside // M, (window - window_row * window_columns) * M + inside % M

    # Everything by index arithmetic, for the tokens in order ([L]) and, for the masks,
    # the same tokens as [nW, N]: no view or reshape between the two, whose shape checks
    # would make the graph assume how many windows there are (torch.export guards).
    grid_row, grid_col = grid_position(torch.arange(padded_height * padded_width, device=device))
    window_row, window_col = grid_position(
        torch.arange(num_windows, device=device)[:, None] * N + torch.arange(N, device=device)[None, :]
    )
    window_to_grid = grid_row * padded_width + grid_col
    real_position = torch.arange(height * width, device=device)
    real_row = real_position // width
    grid_to_window = window_order_index(real_row, real_position - real_row * width)
    real = (grid_row < height) & (grid_col < width)  # [L]
    valid_regular = (window_row < height) & (window_col < width)  # [nW, N]
    # Each window-order token's row among the real tokens (grid order), or H * W.
    from_real = torch.where(real, grid_row * width + grid_col, height * width)
    to_shifted = from_shifted = shifted_mask = None
    if s > 0:
        # Position (h, w) of the rolled grid holds the token from (h + s, w + s), and the
        # token at (h, w) went to (h - s, w - s).
        to_shifted = window_order_index(_wrap(grid_row + s, padded_height), _wrap(grid_col + s, padded_width))
        from_shifted = window_order_index(
            _wrap(grid_row + (padded_height - s), padded_height), _wrap(grid_col + (padded_width - s), padded_width)
        )
        labels = shift_band_labels(window_row, padded_height, M, s) * 3 + shift_band_labels(
            window_col, padded_width, M, s
        )
        forbidden = labels[:, :, None] != labels[:, None, :]
        if mask_padding:
            source_row = _wrap(window_row + s, padded_height)
            source_col = _wrap(window_col + s, padded_width)
            forbidden = forbidden | padding_mask((source_row < height) & (source_col < width))
        shifted_mask = additive(forbidden)
    return WindowLayout(
        height=height,
        width=width,
        window_size=M,
        shift_size=s,
        valid_tokens=real[None, :, None],
        to_shifted=to_shifted,
        from_shifted=from_shifted,
        regular_mask=additive(padding_mask(valid_regular)) if mask_padding else None,
        shifted_mask=shifted_mask,
        regular_mask_free=0,
        shifted_mask_free=0,
        window_to_grid=window_to_grid,
        grid_to_window=grid_to_window,
        real_tokens=grid_to_window,
        from_real=from_real,
    )


def _wrap(index: Tensor, size) -> Tensor:
    """``index % size`` for ``0 <= index < 2 * size``, by a comparison: the ONNX exporter
    cannot take the remainder of a tensor by a symbolic size."""
    return torch.where(index >= size, index - size, index)


class WindowLayoutCache:
    """The window layouts of one owner (a stage), one per grid size, bounded LRU.

    :meth:`layout_for` builds a layout (:func:`build_window_layout`) the first time a
    (height, width, window, shift, mask_padding, device) key is asked for and returns the
    same object afterwards, until ``max_entries`` newer keys have pushed it out. The peers
    rebuild the shift mask in every block on every forward; a stage builds it once per
    input size and shares it between its blocks and iterations.
    """

    def __init__(self, max_entries: int = 16) -> None:
        if not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f'max_entries must be an int >= 1, got {max_entries!r}')
        self.max_entries = max_entries
        self._layouts: OrderedDict[tuple, WindowLayout] = OrderedDict()

    def __len__(self) -> int:
        return len(self._layouts)

    def layout_for(self, x: Tensor, window_size: int, shift_size: int, mask_padding: bool = False) -> WindowLayout:
        """The layout of the ``[B, H, W, C]`` grid ``x``: cached in eager code, built in
        the graph (:func:`build_traceable_layout`, never cached, since the sizes may be
        symbolic) while the model is traced, compiled or exported."""
        _, height, width, _ = x.shape
        if is_transforming(x):
            return build_traceable_layout(height, width, window_size, shift_size, mask_padding, x.device)
        # In build_window_layout's order of arguments.
        key = (height, width, window_size, shift_size, bool(mask_padding), x.device)
        layout = self._layouts.get(key)
        if layout is None:
            layout = build_window_layout(*key)
            self._layouts[key] = layout
            if len(self._layouts) > self.max_entries:
                self._layouts.popitem(last=False)
        else:
            self._layouts.move_to_end(key)
        return layout

    def clear(self) -> None:
        self._layouts.clear()
