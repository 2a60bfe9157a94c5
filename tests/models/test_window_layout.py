"""Window layout: partition, padding, shift gathers and masks, the traced layout and
the per-stage cache."""

import pytest
import torch
import torch.nn.functional as F

from mmswin.models.layers.window_layout import (
    MASK_VALUE,
    WindowLayoutCache,
    build_traceable_layout,
    build_window_layout,
    window_partition,
    window_reverse,
)


def test_partition_then_reverse_is_identity():
    x = torch.randn(2, 14, 21, 5)
    windows = window_partition(x, 7)
    assert windows.shape == (2, 6 * 49, 5)
    assert torch.equal(windows[0, :7, :], x[0, 0, :7])  # first row of the first window
    assert torch.equal(window_reverse(windows, 7, 14, 21), x)


@pytest.mark.parametrize('size', [(14, 21), (11, 17), (3, 5), (20, 6), (7, 9)])
def test_layout_to_windows_and_to_grid_equal_pad_partition_reverse_crop(size):
    """The one-copy paths (padding, partition and crop fused) against F.pad + partition and
    reverse + crop: values, gradients, and a non-contiguous input."""
    H, W = size
    layout = build_window_layout(H, W, 7, 3)
    Hp, Wp = layout.padded_height, layout.padded_width
    x = torch.randn(2, 5, H, W).permute(0, 2, 3, 1).requires_grad_()  # channels-last view
    reference_x = x.detach().clone().requires_grad_()
    torch.full((2 * Hp * Wp * 5,), float('nan'))  # freed at once: fresh buffers are not zero by luck
    windows = layout.to_windows(x)
    expected = window_partition(F.pad(reference_x, (0, 0, 0, Wp - W, 0, Hp - H)), 7)
    assert torch.equal(windows, expected)
    grad = torch.randn_like(expected)
    windows.backward(grad)
    expected.backward(grad)
    assert torch.equal(x.grad, reference_x.grad)
    # under tracing (FLOP counter, export) the F.pad path runs: same values
    traced = torch.jit.trace(lambda grid: layout.to_grid(layout.to_windows(grid)), x.detach(), check_trace=False)
    assert torch.equal(traced(x.detach()), x.detach())

    tokens = expected.detach().clone().requires_grad_()
    reference_tokens = expected.detach().clone().requires_grad_()
    grid = layout.to_grid(tokens)
    expected_grid = window_reverse(reference_tokens, 7, Hp, Wp)[:, :H, :W]
    assert grid.is_contiguous() and torch.equal(grid, expected_grid)
    grad = torch.randn(2, H, W, 5)
    grid.backward(grad)
    expected_grid.backward(grad)
    assert torch.equal(tokens.grad, reference_tokens.grad)


def reference_shift_mask(Hp, Wp, ws, shift):
    """The shift mask as the paper describes it, built with explicit slices."""
    img = torch.zeros(1, Hp, Wp, 1)
    count = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img[:, hs, wsl, :] = count
            count += 1
    labels = window_partition(img, ws).view(-1, ws * ws)
    return labels[:, :, None] != labels[:, None, :]


@pytest.mark.parametrize('size', [(14, 14), (21, 35), (7, 7), (28, 14)])
def test_shift_mask_matches_region_definition(size):
    layout = build_window_layout(*size, window_size=7, shift_size=3)
    expected = reference_shift_mask(*size, 7, 3)[layout.shifted_window_order]
    assert torch.equal(layout.shifted_mask == MASK_VALUE, expected)
    assert layout.regular_mask is None  # no padding, no padding mask
    # Mask-free windows come first in the shifted order.
    masked = expected.flatten(1).any(1)
    assert not masked[: layout.shifted_mask_free].any() and masked[layout.shifted_mask_free :].all()


def test_shift_gather_equals_roll_then_partition():
    H, W, ws, s = 10, 17, 7, 3
    layout = build_window_layout(H, W, ws, s)
    grid = torch.randn(1, H, W, 4)
    regular = layout.to_windows(grid)
    padded = torch.nn.functional.pad(grid, (0, 0, 0, layout.padded_width - W, 0, layout.padded_height - H))
    expected = window_partition(torch.roll(padded, (-s, -s), dims=(1, 2)), ws)
    expected = expected.view(1, -1, ws * ws, 4)[:, layout.shifted_window_order].view(1, -1, 4)
    assert torch.equal(regular.index_select(1, layout.to_shifted), expected)
    assert torch.equal(regular.index_select(1, layout.to_shifted).index_select(1, layout.from_shifted), regular)
    assert torch.equal(layout.to_grid(regular), grid)


def grid_of(height: int, width: int) -> torch.Tensor:
    """A ``[1, H, W, 1]`` grid, as a stage hands it to its layout cache."""
    return torch.zeros(1, height, width, 1)


def test_layout_cache_keeps_one_layout_per_size_and_options():
    cache = WindowLayoutCache()
    a = cache.layout_for(grid_of(9, 9), 7, 3)
    assert cache.layout_for(torch.ones(2, 9, 9, 5), 7, 3) is a  # batch, channels and values do not matter
    assert cache.layout_for(grid_of(9, 9), 7, 3, mask_padding=True) is not a
    assert cache.layout_for(grid_of(9, 10), 7, 3) is not a
    assert cache.layout_for(grid_of(9, 9), 7, 0) is not a
    assert (a.height, a.width, a.window_size, a.shift_size) == (9, 9, 7, 3)
    assert a.attn_mask(True, torch.float16) is a.attn_mask(True, torch.float16)


def test_layout_cache_is_bounded_and_drops_the_least_recently_used():
    cache = WindowLayoutCache(max_entries=2)
    first = cache.layout_for(grid_of(9, 9), 7, 3)
    cache.layout_for(grid_of(9, 10), 7, 3)
    assert cache.layout_for(grid_of(9, 9), 7, 3) is first  # now the most recently used
    cache.layout_for(grid_of(9, 11), 7, 3)  # pushes out (9, 10)
    assert len(cache) == 2
    assert cache.layout_for(grid_of(9, 9), 7, 3) is first
    with pytest.raises(ValueError, match='max_entries'):
        WindowLayoutCache(max_entries=0)


def test_each_stage_owns_its_layouts():
    from mmswin.models.backbones.swin import SwinBackbone

    model = SwinBackbone(
        arch=dict(embed_dims=16, depths=(2, 2), num_heads=(1, 2)), window_size=4, out_indices=(0, 1)
    ).eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 40, 56))
    assert [len(stage.layouts) for stage in model.stages] == [1, 1]
    assert model.stages[0].layouts is not model.stages[1].layouts


def test_padding_mask_hides_padded_keys_from_real_queries_only():
    layout = build_window_layout(5, 5, 7, 3, mask_padding=True)
    valid = layout.valid_tokens.view(-1)
    masked = layout.regular_mask[0] == MASK_VALUE
    assert torch.equal(masked, valid[:, None] & ~valid[None, :])
    for mask in (layout.regular_mask, layout.shifted_mask):
        assert not (mask == MASK_VALUE).all(dim=-1).any(), 'a row is fully masked'


def test_no_padding_mask_when_grid_fits_windows():
    layout = build_window_layout(14, 7, 7, 3, mask_padding=True)
    assert layout.valid_tokens is None and layout.regular_mask is None


@pytest.mark.parametrize('size', [(14, 21), (9, 12), (3, 5), (7, 30)], ids=str)
@pytest.mark.parametrize('mask_padding', [False, True])
def test_traceable_layout_gives_the_eager_layouts_block(size, mask_padding):
    """The layout built in the graph (tracing, compile, export) pads, shifts and masks
    as the cached one: same round trip, same whole-tensor block outputs."""
    from mmswin.models.layers import SwinBlock

    torch.manual_seed(0)
    eager = build_window_layout(*size, 7, 3, mask_padding)
    traced = build_traceable_layout(*size, 7, 3, mask_padding, torch.device('cpu'))
    x = torch.randn(2, *size, 8)
    assert torch.equal(traced.to_grid(traced.to_windows(x)), x)
    assert torch.equal(traced.to_windows(x), eager.to_windows(x))
    for shifted in (False, True):
        block = SwinBlock(8, 2, 7, shifted=shifted, block_impl='reference').eval()
        torch.nn.init.normal_(block.attn.relative_position_bias_table)
        with torch.no_grad():
            expected = eager.to_grid(block(eager.to_windows(x), eager))
            actual = traced.to_grid(block(traced.to_windows(x), traced))
        assert (actual - expected).abs().max() < 1e-5
