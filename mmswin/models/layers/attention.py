"""Window multi-head self-attention with a relative position bias (Swin V1)."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmswin.kernels import check_attn_impl, choose_attention_impl, is_transforming


def relative_position_index(window_size: int) -> Tensor:
    """Index into the ``(2M-1)**2`` bias table for every (query, key) pair of a window.

    Returns ``[N, N]`` long with ``N = M * M``; entry ``(i, j)`` is
    ``(dy + M - 1) * (2M - 1) + (dx + M - 1)`` where ``(dy, dx)`` is the offset of
    token ``i`` from token ``j``. This is the table layout of the public Swin weights.
    """
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing='ij')).flatten(
        1
    )  # [2, N]
    offset = coords[:, :, None] - coords[:, None, :] + (window_size - 1)  # [2, N, N]
    return offset[0] * (2 * window_size - 1) + offset[1]


class WindowMSA(nn.Module):
    """Multi-head self-attention inside windows, with a relative position bias.

    Args:
        embed_dims: channels ``C`` of the tokens.
        num_heads: attention heads; ``C`` must be divisible by it.
        window_size: side ``M`` of a square window; a window holds ``N = M * M`` tokens.
        qkv_bias: add a learnable bias to q, k and v.
        qk_scale: scale of ``q @ k^T``; ``None`` means ``head_dim ** -0.5``.
        attn_drop_rate: dropout on the attention weights (training only).
        proj_drop_rate: dropout after the output projection.
        attn_impl: ``'sdpa'`` (``scaled_dot_product_attention``), ``'eager'`` (explicit
            products and softmax) or ``'auto'`` (:func:`mmswin.kernels.choose_attention_impl`).
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        window_size: int,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        attn_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        attn_impl: str = 'auto',
    ) -> None:
        super().__init__()
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.window_size = window_size
        self.scale = qk_scale if qk_scale is not None else self.head_dims**-0.5
        self.attn_drop_rate = attn_drop_rate
        check_attn_impl(attn_impl)
        self.attn_impl = attn_impl
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        # Recomputed from window_size, so not saved in checkpoints.
        self.register_buffer('relative_position_index', relative_position_index(window_size).view(-1), persistent=False)

    def relative_position_bias(self) -> Tensor:
        """``[num_heads, N, N]`` bias gathered from the table, contiguous.

        Contiguous matters: SDPA's fused CPU kernel copies a mask whose last dim is strided
        into a full ``[windows, heads, N, N]`` tensor on every call.
        """
        N = self.window_size * self.window_size
        bias = self.relative_position_bias_table[self.relative_position_index]
        return bias.view(N, N, self.num_heads).permute(2, 0, 1).contiguous()

    def forward(self, tokens: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """:meth:`attend`, then :meth:`project`: ``[B, num_windows * N, C]`` -> same shape."""
        return self.project(self.attend(tokens, mask))

    def project(self, attended: Tensor) -> Tensor:
        """The output projection and its dropout, on ``[..., C]`` rows of :meth:`attend`."""
        return self.proj_drop(self.proj(attended))

    def attend(self, tokens: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """Attend inside each window, all windows of the batch at once, before the output
        projection.

        Args:
            tokens: ``[B, num_windows * N, C]``, in window order (the ``N`` tokens of a
                window consecutive).
            mask: optional additive ``[num_windows, N, N]`` mask, shared by the batch.

        Returns:
            ``[B, num_windows * N, C]``, the heads' outputs side by side.
        """
        B, L, C = tokens.shape
        N = self.window_size * self.window_size
        heads = self.num_heads
        windows = B * (L // N)
        qkv = self.qkv(tokens).view(windows, N, 3, heads, self.head_dims).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each [B * nW, heads, N, head_dims]

        attn_bias = self.relative_position_bias().to(q.dtype).unsqueeze(0)  # [1, heads, N, N]
        if mask is not None:
            attn_bias = attn_bias + mask.to(q.dtype).unsqueeze(1)  # [nW, heads, N, N]
            # SDPA's fused kernels take 4-D masks only: one copy per image (a view at B = 1
            # in eager code; traced code always copies, so no graph depends on B).
            if is_transforming(q):
                attn_bias = attn_bias.repeat(B, 1, 1, 1)
            else:
                attn_bias = attn_bias.expand(B, -1, -1, -1, -1).reshape(windows, heads, N, N)
        dropout_p = self.attn_drop_rate if self.training else 0.0

        needs_grad = torch.is_grad_enabled() and (q.requires_grad or attn_bias.requires_grad)
        impl = choose_attention_impl(self.attn_impl, q.device.type, needs_grad, is_transforming(q))
        if impl == 'sdpa':
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, dropout_p=dropout_p, scale=self.scale)
        else:
            attn = torch.matmul(q, k.transpose(-2, -1)).mul_(self.scale).add_(attn_bias)
            attn = F.dropout(attn.softmax(dim=-1), p=dropout_p, training=self.training)
            out = attn @ v
        out = out.transpose(1, 2)
        if is_transforming(q):
            # SDPA's output strides differ between its fused kernels and its decomposition
            # (ONNX export): copy, so that no view in the graph depends on which ran.
            out = out.clone(memory_format=torch.contiguous_format)
        return out.reshape(B, L, C)
