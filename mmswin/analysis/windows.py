"""Pictures of how a Swin stage attends on a feature map of a given size.

:func:`draw_windows` writes, for an H x W token grid (a stage's feature map, e.g. 200x334 for stage 0 of
an 800x1333 image):

- ``partition.png``: the regular windows of the grid padded to a multiple of the window;
- ``shifted_partition.png``: the windows after the cyclic shift, on the original grid
  (where wrapped-around windows gather their tokens) and on the rolled grid;
- ``region_labels.png``: the region label of every position, which decides who may
  attend to whom in a shifted window;
- ``shifted_masks.png``: the attention mask of every shifted window (query rows, key
  columns; allowed / masked pairs), laid out like the windows;
- ``regular_masks.png`` with ``--mask-padding`` when the grid is padded: padded keys
  masked in the regular windows too;
- ``masks.npz``: the arrays drawn, for tests and for a closer look.

Everything is read from the backbone's own code: a ``SwinStage`` runs once on the grid
and the window layout it used (indices, region labels, additive masks) is what is drawn.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from mmswin.errors import PreflightError

if TYPE_CHECKING:  # torch loads after the arguments are checked
    import torch

# Mask mosaic colours (RGB): allowed pairs, allowed pairs of a padded query (its output
# is thrown away), pairs masked because the tokens come from different regions, pairs
# masked because the key is padding.
ALLOWED = (255, 255, 255)
ALLOWED_PADDED_QUERY = (214, 214, 214)
MASKED_REGION = (40, 40, 60)
MASKED_PADDING = (240, 140, 30)
BACKGROUND = (150, 150, 150)
MOSAIC_MAX_PIXELS = 40_000_000
WINDOW_COLOURS = (
    np.array(
        [
            [31, 119, 180],
            [255, 127, 14],
            [44, 160, 44],
            [214, 39, 40],
            [148, 103, 189],
            [140, 86, 75],
            [227, 119, 194],
            [127, 127, 127],
            [188, 189, 34],
            [23, 190, 207],
        ]
    )
    / 255.0
)


def stage_layout(height: int, width: int, window_size: int, mask_padding: bool):
    """Run a one-channel-wide ``SwinStage`` on an ``height x width`` grid and return the
    ``WindowLayout`` it attended with (the cached object itself)."""
    import torch

    from mmswin.models.backbones.swin import SwinStage
    from mmswin.models.layers.window_layout import build_window_layout

    stage = SwinStage(
        embed_dims=4,
        depth=2,
        num_heads=1,
        window_size=window_size,
        drop_path_rates=(0.0, 0.0),
        downsample=False,
        mask_padding=mask_padding,
    ).eval()
    with torch.no_grad():
        stage(torch.zeros(1, height, width, 4))
    return build_window_layout(height, width, stage.window_size, stage.shift_size, stage.mask_padding)


def regular_positions(layout) -> np.ndarray:
    """``[L, 2]``: the (row, col) in the padded grid of each token of the regular window order."""
    import torch

    from mmswin.models.layers.window_layout import window_reverse

    Hp, Wp = layout.padded_height, layout.padded_width
    index = window_reverse(torch.arange(Hp * Wp).view(1, -1, 1), layout.window_size, Hp, Wp)[0, :, :, 0]
    positions = np.zeros((Hp * Wp, 2), dtype=np.int64)
    positions[index.reshape(-1).numpy()] = np.stack(
        np.meshgrid(np.arange(Hp), np.arange(Wp), indexing='ij'), -1
    ).reshape(-1, 2)
    return positions


def shifted_window_grid_index(layout) -> np.ndarray:
    """``[nW]``: for each window of the layout's shifted order, its row-major index in the
    rolled grid (the layout may put mask-free windows first)."""
    order = getattr(layout, 'shifted_window_order', None)
    return np.arange(layout.num_windows) if order is None else order.cpu().numpy()


def masks_in_grid_order(mask: torch.Tensor, grid_index: np.ndarray) -> np.ndarray:
    """``[nW, N, N]`` masks in the layout's window order -> row-major window order."""
    ordered = np.empty(tuple(mask.shape), dtype=np.float32)
    ordered[grid_index] = mask.cpu().numpy()
    return ordered


def window_colour(grid_index: np.ndarray, windows_per_row: int) -> np.ndarray:
    """Distinct colours for neighbouring windows: ``(3 * row + col) % 10`` never repeats
    between a window and its eight neighbours."""
    rows, cols = np.divmod(grid_index, windows_per_row)
    return WINDOW_COLOURS[(3 * rows + cols) % len(WINDOW_COLOURS)]


def draw_grid(
    ax,
    colours: np.ndarray,
    layout,
    title: str,
    line_offset: int = 0,
    dashed: bool = False,
    labels: np.ndarray = None,
    padding: np.ndarray = None,
) -> None:
    """One panel: ``colours`` ``[Hp, Wp, 3]`` per token, window lines every ``window_size``
    tokens starting at ``line_offset``, optional numbers and hatched padding."""
    from matplotlib.patches import Rectangle

    Hp, Wp = colours.shape[:2]
    M = layout.window_size
    ax.imshow(colours, extent=(0, Wp, Hp, 0), interpolation='nearest')
    if Hp <= 64 and Wp <= 64:
        for position in range(Hp + 1):
            ax.axhline(position, color='white', linewidth=0.3)
        for position in range(Wp + 1):
            ax.axvline(position, color='white', linewidth=0.3)
    line_width = 1.8 if max(Hp, Wp) <= 16 * M else 0.5  # thin lines where windows are many
    style = dict(color='black', linewidth=line_width, linestyle='--' if dashed else '-')
    for position in range(line_offset % M, Hp + 1, M):
        ax.axhline(position, **style)
    for position in range(line_offset % M, Wp + 1, M):
        ax.axvline(position, **style)
    if padding is not None:
        for row, col in zip(*np.nonzero(padding)):
            ax.add_patch(Rectangle((col, row), 1, 1, fill=False, hatch='///', linewidth=0, edgecolor='0.25'))
    if labels is not None and Hp * Wp <= 48 * 48:
        for row in range(Hp):
            for col in range(Wp):
                ax.text(
                    col + 0.5,
                    row + 0.5,
                    str(labels[row, col]),
                    ha='center',
                    va='center',
                    fontsize=max(4, min(9, 240 // max(Hp, Wp))),
                )
    ax.set_xlim(0, Wp)
    ax.set_ylim(Hp, 0)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel('token column')
    ax.set_ylabel('token row')


def new_figure(layout, panels: int):
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    aspect = layout.padded_height / layout.padded_width
    panel_width = min(7.0, max(4.5, layout.padded_width * 0.3))
    figure, axes = plt.subplots(
        1, panels, figsize=(panel_width * panels + 0.5, panel_width * aspect + 1.3), squeeze=False
    )
    return figure, axes[0]


def save_figure(figure, path: str) -> None:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def grid_summary(layout) -> str:
    text = f'{layout.height}x{layout.width} tokens, window {layout.window_size}'
    if layout.needs_padding:
        text += f', padded to {layout.padded_height}x{layout.padded_width}'
    return text


def padding_grid(layout) -> np.ndarray:
    padded = np.ones((layout.padded_height, layout.padded_width), dtype=bool)
    padded[: layout.height, : layout.width] = False
    return padded


def draw_partition(layout, path: str) -> None:
    Hp, Wp, M = layout.padded_height, layout.padded_width, layout.window_size
    rows, cols = np.meshgrid(np.arange(Hp), np.arange(Wp), indexing='ij')
    colours = window_colour((rows // M) * (Wp // M) + cols // M, Wp // M)
    padded = padding_grid(layout)
    colours[padded] = 0.55 * colours[padded] + 0.45
    figure, (ax,) = new_figure(layout, 1)
    title = f'Windows of W-MSA: {layout.height}x{layout.width} tokens, window {M}\n{Hp // M}x{Wp // M} windows'
    if layout.needs_padding:
        title += f' on the grid padded to {Hp}x{Wp} (hatched)'
    draw_grid(ax, colours, layout, title, padding=padded if layout.needs_padding else None)
    save_figure(figure, path)


def draw_shifted_partition(layout, positions: np.ndarray, grid_index: np.ndarray, path: str) -> np.ndarray:
    """Colour each token by the shifted window it joins, on the original and on the rolled
    grid. Returns ``[Hp, Wp]``: the rolled-grid window index of every original position."""
    Hp, Wp, M = layout.padded_height, layout.padded_width, layout.window_size
    N = M * M
    to_shifted = layout.to_shifted.cpu().numpy()  # shifted-order slot -> regular-order token
    window_of_slot = grid_index[np.arange(to_shifted.size) // N]  # rolled-grid window of each slot
    original = np.zeros((Hp, Wp), dtype=np.int64)
    original[positions[to_shifted, 0], positions[to_shifted, 1]] = window_of_slot
    rolled = np.zeros((Hp, Wp), dtype=np.int64)
    slot_in_window = np.arange(to_shifted.size) % N
    window_rows, window_cols = np.divmod(window_of_slot, Wp // M)
    rolled[window_rows * M + slot_in_window // M, window_cols * M + slot_in_window % M] = window_of_slot

    padded = padding_grid(layout)
    figure, axes = new_figure(layout, 2)
    draw_grid(
        axes[0],
        window_colour(original, Wp // M),
        layout,
        f'Shifted windows on the original grid (shift {layout.shift_size})\n{grid_summary(layout)}',
        line_offset=layout.shift_size,
        dashed=True,
        padding=padded if layout.needs_padding else None,
    )
    rolled_padding = np.roll(padded, (-layout.shift_size, -layout.shift_size), axis=(0, 1))
    draw_grid(
        axes[1],
        window_colour(rolled, Wp // M),
        layout,
        f'After the cyclic shift: roll by -{layout.shift_size}\n(SW-MSA attends in these windows)',
        padding=rolled_padding if layout.needs_padding else None,
    )
    save_figure(figure, path)
    return original


def draw_region_labels(layout, labels: np.ndarray, path: str) -> None:
    """``labels``: ``[Hp, Wp]`` region labels of the rolled grid (from the backbone)."""
    import matplotlib

    s = layout.shift_size
    palette = matplotlib.colormaps['Set3'](np.arange(9))[:, :3]
    original = np.roll(labels, (s, s), axis=(0, 1))  # rolled (h, w) holds original (h + s, w + s)
    padded = padding_grid(layout)
    figure, axes = new_figure(layout, 2)
    draw_grid(
        axes[0],
        palette[original],
        layout,
        'Region labels on the original grid',
        line_offset=s,
        dashed=True,
        labels=original,
        padding=padded if layout.needs_padding else None,
    )
    draw_grid(
        axes[1],
        palette[labels],
        layout,
        'Region labels after the shift\n(a token attends only to its own label)',
        labels=labels,
        padding=np.roll(padded, (-s, -s), axis=(0, 1)) if layout.needs_padding else None,
    )
    save_figure(figure, path)


def mask_mosaic(
    masks: np.ndarray, reference: np.ndarray, padded_queries: np.ndarray, windows_per_row: int, title: str
) -> tuple[np.ndarray, dict]:
    """Lay out ``[nW, N, N]`` additive masks as tiles, one per window in row-major order.

    ``reference``: the same masks without padding masking (tells a region mask from a
    padding mask); ``padded_queries``: ``[nW, N]`` bool. Returns the RGB image and its
    geometry (``origin`` (y, x) of the first tile, ``cell`` pixels per pair, ``gap``).
    """
    import cv2

    num_windows, N, _ = masks.shape
    rows = num_windows // windows_per_row
    cell = max(1, min(8, 1400 // (windows_per_row * N)))
    gap = 2 if cell == 1 else 4
    tile = N * cell
    header = 34 + 18 * len(title)
    width = max(640, windows_per_row * (tile + gap) + gap)
    height = header + rows * (tile + gap) + gap
    if width * height > MOSAIC_MAX_PIXELS:
        raise PreflightError(f'the mask picture would have {width}x{height} pixels; use a smaller --size')
    image = np.full((height, width, 3), 255, dtype=np.uint8)
    image[header:, : windows_per_row * (tile + gap) + gap] = BACKGROUND

    colours = np.empty(masks.shape + (3,), dtype=np.uint8)
    allowed = masks == 0
    colours[allowed] = ALLOWED
    colours[allowed & padded_queries[:, :, None]] = ALLOWED_PADDED_QUERY
    colours[~allowed] = MASKED_REGION
    colours[~allowed & (reference == 0)] = MASKED_PADDING
    for index in range(num_windows):
        row, col = divmod(index, windows_per_row)
        top, left = header + gap + row * (tile + gap), gap + col * (tile + gap)
        image[top : top + tile, left : left + tile] = np.repeat(np.repeat(colours[index], cell, 0), cell, 1)

    font = cv2.FONT_HERSHEY_SIMPLEX
    for line, text in enumerate(title):
        cv2.putText(image, text, (8, 20 + 18 * line), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    legend_top = header - 24
    legend = [(ALLOWED, 'allowed'), (MASKED_REGION, 'masked: other region')]
    if ((~allowed) & (reference == 0)).any():
        legend.append((MASKED_PADDING, 'masked: padded key'))
    if padded_queries.any():
        legend.append((ALLOWED_PADDED_QUERY, 'padded query (output dropped)'))
    x = 8
    for colour, text in legend:
        cv2.rectangle(image, (x, legend_top), (x + 14, legend_top + 14), colour, -1)
        cv2.rectangle(image, (x, legend_top), (x + 14, legend_top + 14), (0, 0, 0), 1)
        cv2.putText(image, text, (x + 20, legend_top + 12), font, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        x += 26 + cv2.getTextSize(text, font, 0.42, 1)[0][0]
    return image, dict(origin=(header + gap, gap), cell=cell, gap=gap)


def write_png(path: str, rgb: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(path, np.ascontiguousarray(rgb[:, :, ::-1])):
        raise OSError(f'could not write {path}')


def draw_windows(height: int, width: int, window_size: int, mask_padding: bool, out: str) -> None:
    """Write the pictures and ``masks.npz`` of the module docstring for an ``height x
    width`` grid into the folder ``out``, and print what was written."""
    layout = stage_layout(height, width, window_size, mask_padding)
    no_padding = stage_layout(height, width, window_size, False)  # tells region masks from padding masks
    os.makedirs(out, exist_ok=True)

    from mmswin.models.layers.window_layout import MASK_VALUE, shift_region_labels

    Hp, Wp, M = layout.padded_height, layout.padded_width, layout.window_size
    N = M * M
    windows_per_row = Wp // M
    positions = regular_positions(layout)
    grid_index = shifted_window_grid_index(layout)
    labels = shift_region_labels(Hp, Wp, M, layout.shift_size).numpy()
    written = []

    draw_partition(layout, os.path.join(out, 'partition.png'))
    written.append('partition.png')
    window_of_position = draw_shifted_partition(
        layout, positions, grid_index, os.path.join(out, 'shifted_partition.png')
    )
    written.append('shifted_partition.png')
    draw_region_labels(layout, labels, os.path.join(out, 'region_labels.png'))
    written.append('region_labels.png')

    valid = ~padding_grid(layout)
    valid_regular = valid[positions[:, 0], positions[:, 1]].reshape(-1, N)  # [nW, N]
    valid_shifted_slots = valid_regular.reshape(-1)[layout.to_shifted.cpu().numpy()].reshape(-1, N)
    padded_queries_shifted = np.empty_like(valid_shifted_slots)
    padded_queries_shifted[grid_index] = ~valid_shifted_slots

    zeros = np.zeros((layout.num_windows, N, N), dtype=np.float32)

    def in_grid_order(mask, order):
        return zeros.copy() if mask is None else masks_in_grid_order(mask, order)

    shifted = in_grid_order(layout.shifted_mask, grid_index)
    shifted_reference = in_grid_order(no_padding.shifted_mask, shifted_window_grid_index(no_padding))
    arrays = dict(
        shifted_mask=shifted,
        shifted_window_order=grid_index,
        region_labels=labels,
        shifted_window_of_position=window_of_position,
        mask_value=np.float32(MASK_VALUE),
        size=np.array([height, width]),
        padded_size=np.array([Hp, Wp]),
        window_size=np.int64(M),
        shift_size=np.int64(layout.shift_size),
        mask_padding=np.bool_(mask_padding),
    )
    masked_windows = int((shifted != 0).any(axis=(1, 2)).sum())
    image, geometry = mask_mosaic(
        shifted,
        shifted_reference,
        padded_queries_shifted,
        windows_per_row,
        [
            f'SW-MSA attention masks: {grid_summary(layout)}, shift {layout.shift_size}',
            'one tile per shifted window, placed as the windows; rows: queries, columns: keys',
            f'{masked_windows} of {layout.num_windows} windows have masked pairs',
        ],
    )
    write_png(os.path.join(out, 'shifted_masks.png'), image)
    written.append('shifted_masks.png')
    arrays.update(
        shifted_origin=np.array(geometry['origin']),
        shifted_cell=np.int64(geometry['cell']),
        shifted_gap=np.int64(geometry['gap']),
    )

    if layout.regular_mask is not None:
        regular = layout.regular_mask.cpu().numpy().astype(np.float32)
        image, geometry = mask_mosaic(
            regular,
            np.zeros_like(regular),
            ~valid_regular,
            windows_per_row,
            [
                f'W-MSA attention masks with mask_padding: {grid_summary(layout)}',
                'one tile per window; rows: queries, columns: keys; real queries never see padded keys',
            ],
        )
        write_png(os.path.join(out, 'regular_masks.png'), image)
        written.append('regular_masks.png')
        arrays.update(
            regular_mask=regular,
            regular_origin=np.array(geometry['origin']),
            regular_cell=np.int64(geometry['cell']),
            regular_gap=np.int64(geometry['gap']),
        )
    elif mask_padding:
        print(f'note: {height}x{width} needs no padding for window {M}, so no regular window is masked')

    np.savez_compressed(os.path.join(out, 'masks.npz'), **arrays)
    written.append('masks.npz')
    print(
        f'{grid_summary(layout)}, shift {layout.shift_size}: {layout.num_windows} windows, {masked_windows} with a '
        f'masked pair after the shift'
    )
    print(f'wrote {", ".join(written)} to {out}')
