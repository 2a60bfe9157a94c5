"""Relative position index and WindowMSA (SDPA against explicit softmax)."""

import pytest
import torch
import torch.nn.functional as F

from mmswin.models.layers.attention import WindowMSA, project_into_window_order, relative_position_index
from mmswin.models.layers.window_layout import build_window_layout

from ..helpers import plain_pad, random_map


def test_relative_position_index_matches_offsets():
    M = 3
    index = relative_position_index(M)
    assert index.shape == (9, 9)
    assert index.min() == 0 and index.max() == (2 * M - 1) ** 2 - 1
    # token 0 is (0, 0), token 8 is (2, 2): offset (-2, -2) -> row 0, col 0 of the table
    assert index[0, 8] == 0
    assert index[8, 0] == (2 * M - 1) ** 2 - 1
    assert torch.all(index.diagonal() == (M - 1) * (2 * M - 1) + (M - 1))


@pytest.mark.parametrize('with_mask', [False, True])
def test_sdpa_and_eager_agree(with_mask):
    attn = WindowMSA(32, 4, 7, attn_impl='sdpa')
    torch.nn.init.normal_(attn.relative_position_bias_table)
    eager = WindowMSA(32, 4, 7, attn_impl='eager')
    eager.load_state_dict(attn.state_dict())
    x = torch.randn(2, 6 * 49, 32)  # two images of 6 windows
    mask = build_window_layout(14, 21, 7, 3).shifted_mask if with_mask else None
    assert torch.allclose(attn(x, mask), eager(x, mask), atol=1e-5)


def test_sdpa_gradients_match_eager():
    attn = WindowMSA(16, 2, 4, attn_impl='sdpa')
    eager = WindowMSA(16, 2, 4, attn_impl='eager')
    eager.load_state_dict(attn.state_dict())
    x = torch.randn(1, 4 * 16, 16)  # one image of 4 windows
    mask = build_window_layout(8, 8, 4, 2).shifted_mask
    attn(x, mask).square().sum().backward()
    eager(x, mask).square().sum().backward()
    for (name, a), b in zip(attn.named_parameters(), eager.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5), name


def test_split_heads_gives_each_window_and_head_its_q_k_v():
    from mmswin.models.layers.attention import split_heads

    B, nW, N, heads, d = 2, 3, 4, 2, 5
    qkv = torch.randn(B, nW * N, 3 * heads * d)
    q, k, v = split_heads(qkv, N, heads)
    assert q.shape == k.shape == v.shape == (B * nW, heads, N, d)
    # Window w of image b, head h, token t: channels [which * C + h * d, ... + d) of row w * N + t.
    b, w, h, t = 1, 2, 1, 3
    row = qkv[b, w * N + t]
    for which, tensor in enumerate((q, k, v)):
        start = which * heads * d + h * d
        assert torch.equal(tensor[b * nW + w, h, t], row[start : start + d])


@pytest.mark.parametrize('used', [(0, 1, 2), (0, 2), (1, 2)])
@pytest.mark.parametrize('q_scale', [1.0, 0.375])
def test_contiguous_split_heads_matches_the_views_forward_and_backward(used, q_scale):
    from mmswin.models.layers.attention import split_heads

    B, nW, N, heads, d = 2, 3, 4, 2, 5
    qkv = torch.randn(B, nW * N, 3 * heads * d, dtype=torch.float64, requires_grad=True)
    weights = [torch.randn(B * nW, heads, N, d, dtype=torch.float64) for _ in range(3)]

    def loss(parts):
        return sum((parts[i] * weights[i]).sum() for i in used)

    def scaled_views(t):
        q, k, v = split_heads(t, N, heads)
        return q * q_scale, k, v

    views = scaled_views(qkv)
    copies = split_heads(qkv, N, heads, contiguous=True, q_scale=q_scale)
    assert all(c.is_contiguous() and torch.equal(c, v) for c, v in zip(copies, views))
    (from_views,) = torch.autograd.grad(loss(views), qkv)
    (from_copies,) = torch.autograd.grad(loss(split_heads(qkv, N, heads, contiguous=True, q_scale=q_scale)), qkv)
    assert torch.equal(from_copies, from_views)
    assert torch.autograd.gradcheck(lambda t: loss(split_heads(t, N, heads, contiguous=True, q_scale=q_scale)), (qkv,))


def test_split_heads_refuses_to_scale_views():
    from mmswin.models.layers.attention import split_heads

    with pytest.raises(ValueError, match='q_scale needs contiguous=True'):
        split_heads(torch.randn(1, 4, 6), 4, 1, q_scale=0.5)


def _plain_attention_weights(q, k, bias, mask, scale):
    """softmax(scale * q k^T + bias + mask), straight from the paper's equation."""
    scores = scale * q @ k.transpose(-2, -1) + bias
    if mask is not None:
        scores = scores + mask.unsqueeze(1)
    return scores.softmax(-1)


@pytest.mark.parametrize('with_mask', [False, True])
@pytest.mark.parametrize('scale', [1.0, 0.5])
def test_attention_weights_node_matches_the_equation_forward_and_backward(with_mask, scale):
    from mmswin.models.layers.attention import attention_weights

    torch.manual_seed(0)
    B, nW, heads, N, d = 2, 3, 2, 4, 5
    q, k = (torch.randn(B, nW, heads, N, d, dtype=torch.float64, requires_grad=True) for _ in range(2))
    bias = torch.randn(heads, N, N, dtype=torch.float64, requires_grad=True)
    mask = torch.where(torch.rand(nW, N, N) < 0.3, -100.0, 0.0).double() if with_mask else None
    got = attention_weights(q, k, bias, mask, scale)
    want = _plain_attention_weights(q, k, bias, mask, scale)
    assert torch.allclose(got, want, atol=1e-12)
    probe = torch.randn_like(want)
    grads = torch.autograd.grad((got * probe).sum(), (q, k, bias))
    expected = torch.autograd.grad((want * probe).sum(), (q, k, bias))
    for name, g, e in zip(('q', 'k', 'bias'), grads, expected):
        assert torch.allclose(g, e, atol=1e-10), name
    assert torch.autograd.gradcheck(lambda *t: attention_weights(*t, mask, scale), (q, k, bias))


def test_attention_weights_node_under_bf16_autocast_keeps_each_dtype():
    from mmswin.models.layers.attention import attention_weights

    torch.manual_seed(0)
    q, k = (torch.randn(2, 3, 2, 16, 8, dtype=torch.bfloat16, requires_grad=True) for _ in range(2))
    bias = torch.randn(2, 16, 16, requires_grad=True)  # an fp32 parameter, as the bias table is
    with torch.autocast('cpu', dtype=torch.bfloat16):
        weights = attention_weights(q, k, bias, None, 0.25)
        assert weights.dtype == torch.bfloat16
        # backward inside autocast too: the gradients keep their inputs' dtypes
        weights.float().square().sum().backward()
    assert (q.grad.dtype, k.grad.dtype, bias.grad.dtype) == (torch.bfloat16, torch.bfloat16, torch.float32)
    want = _plain_attention_weights(q.detach().float(), k.detach().float(), bias.detach(), None, 0.25)
    assert (weights.float() - want).abs().max() < 2e-2


def test_attention_weights_node_casts_fp32_inputs_as_autocast_casts_matmul():
    from mmswin.models.layers.attention import attention_weights

    torch.manual_seed(0)
    q, k = (torch.randn(2, 3, 2, 16, 8, requires_grad=True) for _ in range(2))
    bias = torch.randn(2, 16, 16, requires_grad=True)
    probe = torch.randn(2, 3, 2, 16, 16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        weights = attention_weights(q, k, bias, None, 0.25)
        want = _plain_attention_weights(q, k, bias, None, 0.25)
    assert weights.dtype == torch.bfloat16  # the products in bf16, the bias cast to them
    grads = torch.autograd.grad((weights.float() * probe).sum(), (q, k, bias))
    expected = torch.autograd.grad((want.float() * probe).sum(), (q, k, bias))
    assert torch.allclose(weights.float(), want.float(), atol=1e-2)
    for name, g, e in zip(('q', 'k', 'bias'), grads, expected):
        assert g.dtype == torch.float32, name
        assert (g - e).norm() <= 2e-2 * e.norm(), name


@pytest.mark.parametrize('padded, real, with_bias', [(23, 17, True), (23, 17, False), (12, 12, True)])
def test_projection_into_window_order_matches_projecting_padded_zeros(padded, real, with_bias):
    """The product on the real rows only, the padding rows given the bias: the values
    and gradients (bias included, which padding rows feed) of projecting zero rows."""
    row_map = random_map(padded, real, seed=2)
    tokens = torch.randn(2, real, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(9, 6, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(9, dtype=torch.float64, requires_grad=True) if with_bias else None
    inputs = (tokens, weight) + ((bias,) if with_bias else ())
    ours = project_into_window_order(tokens, weight, bias, row_map)
    plain = F.linear(plain_pad(tokens, row_map), weight, bias)
    assert ours.shape == (2, padded, 9)
    assert torch.allclose(ours, plain, rtol=0, atol=1e-12)
    grad = torch.randn_like(plain)
    for ours_grad, plain_grad in zip(torch.autograd.grad(ours, inputs, grad), torch.autograd.grad(plain, inputs, grad)):
        assert torch.allclose(ours_grad, plain_grad, rtol=0, atol=1e-12)
    assert torch.autograd.gradcheck(lambda *args: project_into_window_order(*args[:2], bias, row_map), inputs[:2])


def test_projection_into_window_order_under_bf16_autocast_pads_in_the_products_dtype():
    row_map = random_map(23, 17, seed=3)
    tokens = torch.randn(2, 17, 8)
    linear = torch.nn.Linear(8, 12)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        ours = project_into_window_order(tokens, linear.weight, linear.bias, row_map)
        plain = linear(plain_pad(tokens, row_map))
    assert ours.dtype == plain.dtype == torch.bfloat16
    assert torch.allclose(ours.float(), plain.float(), rtol=1e-2, atol=1e-2)
    padding = row_map.from_source == 17
    assert torch.equal(ours[:, padding], linear.bias.to(torch.bfloat16).expand(2, int(padding.sum()), 12))
