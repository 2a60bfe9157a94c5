"""The CPU fp32 kernels of the Swin block (inference in place, training as one autograd
node) against the whole-tensor reference block: same outputs, same gradients, for every
chunk layout; and the in-place kernel under bf16 autocast (its attention, its kept
weight copies)."""

import pytest
import torch

from mmswin.kernels import cpu_chunked
from mmswin.kernels.cpu_chunked import block_params, block_spec
from mmswin.models.layers import SwinBlock
from mmswin.models.layers.window_layout import build_window_layout

# (height, width, mask_padding): fits the windows / padded / padded with padding masks / one window
GRIDS = [(14, 21, False), (19, 25, False), (19, 25, True), (3, 5, False)]


def make_block(shifted, **kwargs):
    block = SwinBlock(32, 2, 7, shifted, **kwargs)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for param in block.parameters():
            param.copy_(0.2 * torch.randn(param.shape, generator=generator))
    return block


def real_tokens(layout, tokens):
    """Zero the padded tokens, whose values no path defines."""
    return tokens if layout.valid_tokens is None else tokens * layout.valid_tokens


@pytest.mark.parametrize('chunk_tokens', [4096, 98])  # one chunk per run / two windows per chunk
@pytest.mark.parametrize('shifted', [False, True])
@pytest.mark.parametrize('grid', GRIDS, ids=str)
def test_in_place_inference_matches_reference(grid, shifted, chunk_tokens):
    height, width, mask_padding = grid
    block = make_block(shifted).eval()
    layout = build_window_layout(height, width, 7, 3, mask_padding)
    x = layout.to_windows(torch.randn(2, height, width, 32))
    with torch.no_grad():
        expected = block.forward_reference(x, layout)
        actual = cpu_chunked.block_forward_in_place(
            x.clone(), layout, block_params(block), block_spec(block, layout), chunk_tokens
        )
    assert (real_tokens(layout, actual - expected)).abs().max() < 1e-5


@pytest.mark.parametrize('chunk_tokens', [4096, 98])
@pytest.mark.parametrize('shifted', [False, True])
@pytest.mark.parametrize('grid', GRIDS, ids=str)
def test_block_function_matches_reference_outputs_and_gradients(grid, shifted, chunk_tokens):
    height, width, mask_padding = grid
    block = make_block(shifted, qkv_bias=not mask_padding)
    layout = build_window_layout(height, width, 7, 3, mask_padding)
    x = layout.to_windows(torch.randn(2, height, width, 32)).requires_grad_()
    inputs = [x, *block.parameters()]
    expected = block.forward_reference(x, layout)
    grad_out = real_tokens(layout, torch.randn_like(expected))
    expected_grads = torch.autograd.grad(expected, inputs, grad_out)
    actual = cpu_chunked.SwinBlockFunction.apply(
        x, None, None, layout, block_spec(block, layout), chunk_tokens, *block_params(block)
    )
    actual_grads = torch.autograd.grad(actual, inputs, grad_out)
    assert (real_tokens(layout, actual - expected)).abs().max() < 1e-5
    names = ['x'] + [name for name, _ in block.named_parameters()]
    for name, a, b in zip(names, actual_grads, expected_grads):
        assert (a - b).abs().max() <= 1e-5 * b.abs().max() + 1e-7, name


@pytest.mark.parametrize('size', [(14, 14), (11, 17)])
@pytest.mark.parametrize(
    'attn_scale, mlp_scale',
    [
        ([2.0, 0.0], [0.0, 2.0]),  # image 0 keeps only the attention branch, image 1 only the MLP
        ([0.0, 1.25], [0.0, 1.25]),  # image 0 drops both branches: the block is the identity for it
        ([1.25, 1.25], [1.25, 0.0]),
        ([0.0, 0.0], [0.0, 0.0]),  # the whole batch drops both: identity, zero parameter gradients
    ],
)
def test_block_function_applies_stochastic_depth_per_image(size, attn_scale, mlp_scale):
    """Dropped branches are skipped, not multiplied by zero: outputs and gradients must
    still equal the reference's (padded grids included)."""
    block = make_block(True, drop_path_rate=0.5)
    layout = build_window_layout(*size, 7, 3)
    x = layout.to_windows(torch.randn(2, *size, 32)).requires_grad_()
    scales = [torch.tensor(attn_scale), torch.tensor(mlp_scale)]
    actual = cpu_chunked.SwinBlockFunction.apply(
        x, *scales, layout, block_spec(block, layout), 4096, *block_params(block)
    )
    draws = iter(scales)
    block.drop_path._draw_scale = lambda t: next(draws).view(-1, 1, 1)
    expected = block.forward_reference(x, layout)
    assert real_tokens(layout, actual - expected).abs().max() < 1e-5
    grad_out = real_tokens(layout, torch.randn_like(expected))
    for a, b in zip(
        torch.autograd.grad(actual, [x, *block.parameters()], grad_out),
        torch.autograd.grad(expected, [x, *block.parameters()], grad_out),
    ):
        assert (a - b).abs().max() <= 1e-5 * b.abs().max() + 1e-7


@pytest.mark.parametrize('masked', [False, True])
def test_bf16_window_attention_matches_fp32(masked):
    """Under autocast the chunk attention takes bf16 qkv and the fp32 bias: it agrees
    with the fp32 computation to bf16 precision, with scores large enough that a wrong
    scale, bias or head order would show."""
    generator = torch.Generator().manual_seed(0)
    windows, N, heads, head_dims = 5, 16, 3, 8
    qkv = torch.randn(windows * N, 3 * heads * head_dims, generator=generator)
    bias = torch.randn(windows if masked else 1, heads, N, N, generator=generator)
    scale = head_dims**-0.5
    exact = cpu_chunked.window_attention(qkv, bias, heads, scale)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        low = cpu_chunked.window_attention(qkv.bfloat16(), bias, heads, scale)
    assert low.dtype == torch.bfloat16 and low.shape == exact.shape
    assert (low.float() - exact).abs().max() < 0.05


def test_bf16_inference_casts_each_weight_once_until_it_changes(monkeypatch):
    """Under bf16 autocast the in-place kernel casts the linear weights once and keeps
    the copies across passes; a weight changed in place is cast again. The outputs are
    those of autocast's own casts on every pass."""
    block = make_block(True).eval()
    layout = build_window_layout(19, 25, 7, 3)
    x = layout.to_windows(torch.randn(2, 19, 25, 32, generator=torch.Generator().manual_seed(5)))

    def run():
        with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
            return cpu_chunked.block_forward_in_place(x.clone(), layout, block_params(block), block_spec(block, layout))

    def run_with_autocasts_casts():
        with monkeypatch.context() as patch:
            patch.setattr(cpu_chunked, 'weights_in_autocast_dtype', lambda params: params)
            return run()

    def copy_of(weight):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            return cpu_chunked.weights_in_autocast_dtype(block_params(block)).fc1_weight

    first = run()
    kept = copy_of(block.mlp.fc1.weight)
    assert kept.dtype == torch.bfloat16
    assert torch.equal(run(), first) and torch.equal(first, run_with_autocasts_casts())
    assert copy_of(block.mlp.fc1.weight) is kept  # not cast again
    with torch.no_grad():
        block.mlp.fc1.weight.mul_(-1.5)
    changed = run()
    assert not torch.equal(changed, first)
    assert torch.equal(changed, run_with_autocasts_casts())
    assert torch.equal(copy_of(block.mlp.fc1.weight), block.mlp.fc1.weight.detach().bfloat16())
