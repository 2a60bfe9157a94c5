"""Relative position index and WindowMSA (SDPA against explicit softmax)."""

import pytest
import torch

from mmswin.models.layers.attention import WindowMSA, relative_position_index
from mmswin.models.layers.window_layout import build_window_layout


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


@pytest.mark.parametrize('used', [(0, 1, 2), (0, 2)])
def test_contiguous_split_heads_matches_the_views_forward_and_backward(used):
    from mmswin.models.layers.attention import split_heads

    B, nW, N, heads, d = 2, 3, 4, 2, 5
    qkv = torch.randn(B, nW * N, 3 * heads * d, dtype=torch.float64, requires_grad=True)
    weights = [torch.randn(B * nW, heads, N, d, dtype=torch.float64) for _ in range(3)]

    def loss(parts):
        return sum((parts[i] * weights[i]).sum() for i in used)

    views = split_heads(qkv, N, heads)
    copies = split_heads(qkv, N, heads, contiguous=True)
    assert all(c.is_contiguous() and torch.equal(c, v) for c, v in zip(copies, views))
    (from_views,) = torch.autograd.grad(loss(views), qkv)
    (from_copies,) = torch.autograd.grad(loss(split_heads(qkv, N, heads, contiguous=True)), qkv)
    assert torch.equal(from_copies, from_views)
    assert torch.autograd.gradcheck(lambda t: loss(split_heads(t, N, heads, contiguous=True)), (qkv,))
