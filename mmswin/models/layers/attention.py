"""Window multi-head self-attention: with a relative position bias table (Swin V1,
:class:`WindowMSA`) and with scaled cosine attention and a continuous position bias
(Swin V2, :class:`WindowMSAV2`)."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmswin.kernels import autocast_dtype, check_attn_impl, choose_attention_impl, is_transforming

from .token_gather import RowMap, crop_rows, pad_rows


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


def project_into_window_order(tokens: Tensor, weight: Tensor, bias: Optional[Tensor], rows: Optional[RowMap]) -> Tensor:
    """``F.linear(pad_rows(tokens, rows), weight, bias)``: ``[B, R, C]`` tokens of a
    block's stream -> ``[B, P, C_out]`` in its window order (``rows``:
    :meth:`~.window_layout.WindowLayout.real_row_map`; None: the tokens are in it).

    The product runs on the ``R`` real rows only: the padding rows, zeros on the way in,
    come out as ``bias`` (zeros without one), in the product's dtype, as a product over
    the padded rows gives them; ``bias``'s gradient sums over every row, padding included.
    """
    if rows is None:
        return F.linear(tokens, weight, bias)
    permutation = not (rows.traced or is_transforming(tokens)) and rows.is_permutation
    if bias is None or permutation:
        return pad_rows(F.linear(tokens, weight, bias), rows)
    padded = pad_rows(F.linear(tokens, weight), rows)  # a fresh tensor: the add can write into it
    return padded.add_(bias.to(padded.dtype))


def split_heads(
    qkv: Tensor, window_tokens: int, num_heads: int, contiguous: bool = False, q_scale: float = 1.0
) -> tuple[Tensor, Tensor, Tensor]:
    """``[B, nW * N, 3 * C]`` rows of q, k and v side by side (``N = window_tokens``) ->
    ``q``, ``k``, ``v``, each ``[B * nW, num_heads, N, C // num_heads]``, as
    :func:`attend_in_windows` takes them.

    Views of ``qkv`` by default (SDPA reads them in place). ``contiguous``: three
    contiguous copies, for the explicit products, which would copy them anyway, with q
    multiplied by ``q_scale`` in its copy; in eager code the backward pass then writes
    the three gradients into one ``[B, L, 3C]`` tensor in one pass, where autograd's own
    backward of the views stacks them and copies the stack again. ``q_scale`` needs
    ``contiguous``.
    """
    if q_scale != 1.0 and not contiguous:
        raise ValueError('split_heads: q_scale needs contiguous=True (the views cannot be scaled)')
    if contiguous and not is_transforming(qkv):
        return _ContiguousHeads.apply(qkv, window_tokens, num_heads, q_scale)
    batch, length, channels = qkv.shape
    head_dims = channels // (3 * num_heads)
    windows = batch * (length // window_tokens)
    q, k, v = qkv.view(windows, window_tokens, 3, num_heads, head_dims).permute(2, 0, 3, 1, 4).unbind(0)
    if not contiguous:
        return q, k, v
    return (q * q_scale).contiguous(), k.contiguous(), v.contiguous()


class _ContiguousHeads(torch.autograd.Function):
    @staticmethod
    def forward(ctx, qkv: Tensor, window_tokens: int, num_heads: int, q_scale: float):
        batch, length, channels = qkv.shape
        ctx.shape = qkv.shape
        ctx.q_scale = q_scale
        per_head = qkv.view(batch * (length // window_tokens), window_tokens, 3, num_heads, channels // (3 * num_heads))
        q, k, v = (part.transpose(1, 2) for part in per_head.unbind(2))
        scaled_q = torch.mul(q, q_scale, out=q.new_empty(q.shape))  # one pass: the copy scales
        return scaled_q, k.contiguous(), v.contiguous()

    @staticmethod
    def backward(ctx, *grads: Optional[Tensor]):
        like = next(grad for grad in grads if grad is not None)
        windows, heads, tokens, head_dims = like.shape
        grad_qkv = like.new_empty(windows, tokens, 3, heads, head_dims)
        for index, grad in enumerate(grads):
            if grad is None:
                grad_qkv[:, :, index].zero_()
            elif index == 0:
                torch.mul(grad.transpose(1, 2), ctx.q_scale, out=grad_qkv[:, :, 0])
            else:
                grad_qkv[:, :, index].copy_(grad.transpose(1, 2))
        return grad_qkv.view(ctx.shape), None, None, None


def combined_bias(bias: Tensor, mask: Optional[Tensor], dtype: torch.dtype) -> Tensor:
    """``bias`` ``[heads, N, N]`` plus the additive ``mask`` ``[nW, N, N]`` (None: no
    mask), in ``dtype``: ``[nW or 1, heads, N, N]``."""
    attn_bias = bias.to(dtype).unsqueeze(0)  # [1, heads, N, N]
    if mask is None:
        return attn_bias
    # mask first: broadcasting its windows against the bias's 1 makes no shape guard.
    return mask.to(dtype).unsqueeze(1) + attn_bias  # [nW, heads, N, N]


def attention_weights(q: Tensor, k: Tensor, bias: Tensor, mask: Optional[Tensor], scale: float = 1.0) -> Tensor:
    """``softmax(scale * q @ k^T + bias + mask)`` over the keys, in the products' dtype
    (``q``'s, or autocast's).

    ``q``, ``k``: ``[B, nW, heads, N, d]``; ``bias``: ``[heads, N, N]``; ``mask``:
    optional additive ``[nW, N, N]``, shared by the batch. Returns ``[B, nW, heads, N,
    N]``. In eager code one autograd node computes it, overwriting its own scores, and
    its backward reduces the bias's gradient over images and windows in one sum; traced,
    compiled or exported code runs the same ops unfused.
    """
    low_precision = autocast_dtype(q.device.type)
    if low_precision is not None:  # autocast's cast of matmul's inputs; the node keeps their dtype
        q, k = q.to(low_precision), k.to(low_precision)
    if not is_transforming(q) and q.dtype == k.dtype:
        return _AttentionWeights.apply(q, k, bias, mask, scale)
    scores = torch.matmul(q, k.transpose(-2, -1))
    if scale != 1.0:
        scores = scores * scale
    return (scores + combined_bias(bias, mask, scores.dtype)).softmax(dim=-1)


class _AttentionWeights(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, bias: Tensor, mask: Optional[Tensor], scale: float) -> Tensor:
        scores = torch.matmul(q, k.transpose(-2, -1))
        if scale != 1.0:
            scores.mul_(scale)
        weights = scores.add_(combined_bias(bias, mask, scores.dtype)).softmax(dim=-1)
        ctx.save_for_backward(q, k, weights)
        ctx.scale = scale
        ctx.bias_dtype = bias.dtype
        return weights

    @staticmethod
    def backward(ctx, grad: Tensor):
        q, k, weights = ctx.saved_tensors
        grad_scores = torch._softmax_backward_data(grad.contiguous(), weights, -1, weights.dtype)
        # [heads, N, N]: over images and windows at once (the mask takes no gradient).
        grad_bias = grad_scores.sum(dim=(0, 1)).to(ctx.bias_dtype) if ctx.needs_input_grad[2] else None
        if ctx.scale != 1.0:
            grad_scores.mul_(ctx.scale)
        grad_q = torch.matmul(grad_scores, k) if ctx.needs_input_grad[0] else None
        grad_k = torch.matmul(grad_scores.transpose(-2, -1), q) if ctx.needs_input_grad[1] else None
        return grad_q, grad_k, grad_bias, None, None


def attend_in_windows(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    bias: Tensor,
    mask: Optional[Tensor],
    batch: int,
    scale: float,
    attn_impl: str,
    dropout_p: float = 0.0,
) -> Tensor:
    """Softmax attention inside every window of a batch, V1 and V2 alike.

    ``q``, ``k``, ``v``: ``[B * nW, heads, N, d]``; ``bias``: ``[heads, N, N]``, added to
    every window's scores; ``mask``: optional additive ``[nW, N, N]``, shared by the
    batch; ``scale`` multiplies ``q @ k^T``; ``dropout_p`` drops attention weights.
    ``attn_impl`` as :func:`mmswin.kernels.choose_attention_impl` takes it. Returns
    ``[batch, nW * N, heads * d]``, the heads' outputs side by side.
    """
    windows, heads, N, head_dims = q.shape
    needs_grad = torch.is_grad_enabled() and (q.requires_grad or bias.requires_grad)
    impl = choose_attention_impl(attn_impl, q.device.type, needs_grad, is_transforming(q))
    if impl == 'sdpa':
        attn_bias = combined_bias(bias, mask, q.dtype)
        if mask is not None:
            # SDPA's fused kernels take 4-D masks only: one copy per image (a view at B = 1
            # in eager code; traced code always copies, so no graph depends on B).
            if is_transforming(q):
                attn_bias = attn_bias.repeat(batch, 1, 1, 1)
            else:
                attn_bias = attn_bias.expand(batch, -1, -1, -1, -1).reshape(windows, heads, N, N)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, dropout_p=dropout_p, scale=scale)
    else:
        # Scores as [B, nW, heads, N, N]: the bias and the mask broadcast over them.
        q, k, v = (part.reshape(batch, -1, heads, N, head_dims) for part in (q, k, v))
        attn = attention_weights(q, k, bias, mask, scale)
        if dropout_p > 0:
            attn = F.dropout(attn, p=dropout_p)
        out = (attn @ v).view(windows, heads, N, head_dims)
    out = out.transpose(1, 2)
    if is_transforming(q):
        # SDPA's output strides differ between its fused kernels and its decomposition
        # (ONNX export): copy, so that no view in the graph depends on which ran.
        out = out.clone(memory_format=torch.contiguous_format)
    return out.reshape(batch, -1, heads * head_dims)


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

    def attend(self, tokens: Tensor, mask: Optional[Tensor] = None, rows: Optional[RowMap] = None) -> Tensor:
        """Attend inside each window, all windows of the batch at once, before the output
        projection.

        Args:
            tokens: ``[B, num_windows * N, C]`` in window order (the ``N`` tokens of a
                window consecutive), or with ``rows``, ``[B, R, C]`` tokens that ``rows``
                places in it (:meth:`~.window_layout.WindowLayout.real_row_map`); the
                window order's other rows are padding, zeros before the qkv projection.
            mask: optional additive ``[num_windows, N, N]`` mask, shared by the batch.
            rows: optional map of ``tokens`` into the window order.

        Returns:
            The heads' outputs side by side, in the order and shape of ``tokens``.
        """
        qkv = project_into_window_order(tokens, self.qkv.weight, self.qkv.bias, rows)
        table = self.relative_position_bias_table
        needs_grad = torch.is_grad_enabled() and (qkv.requires_grad or table.requires_grad)
        impl = choose_attention_impl(self.attn_impl, qkv.device.type, needs_grad, is_transforming(qkv))
        N = self.window_size * self.window_size
        eager = impl == 'eager'
        # The explicit products scale q in its copy; SDPA scales inside its kernel.
        q, k, v = split_heads(qkv, N, self.num_heads, contiguous=eager, q_scale=self.scale if eager else 1.0)
        dropout_p = self.attn_drop_rate if self.training else 0.0
        bias = self.relative_position_bias()
        scale = 1.0 if eager else self.scale
        out = attend_in_windows(q, k, v, bias, mask, tokens.shape[0], scale, impl, dropout_p)
        return out if rows is None else crop_rows(out, rows)


# --- Swin V2 (Liu et al., "Swin Transformer V2", CVPR 2022) -------------------------------------

# exp(logit_scale) is clamped at 100: the cosine similarities are scaled by at most 100.
LOGIT_SCALE_MAX = math.log(100.0)
CPB_HIDDEN_DIMS = 512


def log_relative_coords_table(
    window_size: int, pretrained_window_size: int = 0, device: torch.device | str | None = None
) -> Tensor:
    """Inputs of the continuous position bias MLP: ``[(2M - 1)**2, 2]`` float32.

    Row ``(dy + M - 1) * (2M - 1) + (dx + M - 1)`` (the rows :func:`relative_position_index`
    points at) holds the offset ``(dy, dx)``, each in ``[-(M - 1), M - 1]``, divided by
    ``P - 1`` (``P = pretrained_window_size`` when > 0, else ``M``), times 8, then mapped
    by ``sign(t) * log2(|t| + 1) / log2(8)``. A window of 1 has the single offset 0.
    """
    offsets = torch.arange(-(window_size - 1), window_size, dtype=torch.float32, device=device)
    table = torch.stack(torch.meshgrid(offsets, offsets, indexing='ij'), dim=-1).view(-1, 2)
    reference = pretrained_window_size if pretrained_window_size > 0 else window_size
    table = table / max(reference - 1, 1) * 8
    return torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)


@dataclass(frozen=True)
class PositionBiasInputs:
    """What a V2 attention needs to compute its bias for one window size: the MLP's
    input table ``coords_table`` ``[(2M - 1)**2, 2]`` and ``index`` ``[N * N]`` long
    (:func:`relative_position_index`, flattened), ``N = M * M``. Built once per window
    size and device by the stage that owns it."""

    window_size: int
    pretrained_window_size: int
    coords_table: Tensor
    index: Tensor

    @classmethod
    def build(
        cls, window_size: int, pretrained_window_size: int, device: torch.device | str | None = None
    ) -> PositionBiasInputs:
        table = log_relative_coords_table(window_size, pretrained_window_size, device)
        index = relative_position_index(window_size).view(-1).to(device)
        return cls(window_size, pretrained_window_size, table, index)


class WindowMSAV2(nn.Module):
    """Swin V2 window attention: scaled cosine attention with a continuous relative
    position bias.

    ``softmax(cos(q, k) * exp(min(logit_scale, log 100)) + 16 * sigmoid(cpb_mlp(table))[index] + mask) v``
    per head; ``logit_scale`` is ``[num_heads, 1, 1]``; qkv has no bias of its own but
    learnable ``q_bias`` and ``v_bias`` (k has none); ``cpb_mlp`` is ``Linear(2,
    cpb_hidden_dims) -> ReLU -> Linear(cpb_hidden_dims, num_heads, bias=False)``. The
    window size is not fixed here: the caller gives it with the bias inputs, so one
    module serves every window a stage picks for its input.

    Args:
        embed_dims: channels ``C`` of the tokens.
        num_heads: attention heads; ``C`` must be divisible by it.
        attn_drop_rate: dropout on the attention weights (training only).
        proj_drop_rate: dropout after the output projection.
        cpb_hidden_dims: hidden width of the position bias MLP (512 in every public weight).
        attn_impl: ``'sdpa'``, ``'eager'`` or ``'auto'`` (:func:`mmswin.kernels.choose_attention_impl`).
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        attn_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        cpb_hidden_dims: int = CPB_HIDDEN_DIMS,
        attn_impl: str = 'auto',
    ) -> None:
        super().__init__()
        check_attn_impl(attn_impl)
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.head_dims = embed_dims // num_heads
        self.attn_drop_rate = attn_drop_rate
        self.attn_impl = attn_impl
        self.qkv = nn.Linear(embed_dims, embed_dims * 3, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(embed_dims))
        self.v_bias = nn.Parameter(torch.zeros(embed_dims))
        self.logit_scale = nn.Parameter(torch.full((num_heads, 1, 1), math.log(10.0)))
        self.cpb_mlp = nn.Sequential(
            nn.Linear(2, cpb_hidden_dims), nn.ReLU(inplace=True), nn.Linear(cpb_hidden_dims, num_heads, bias=False)
        )
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop_rate)
        # (window, pretrained window, device, dtype) -> (weights' identity, bias); eager no-grad only.
        self._bias_cache: OrderedDict = OrderedDict()

    def reset_parameters(self) -> None:
        """The V2 initial values: ``logit_scale = log(10)``, ``q_bias = v_bias = 0``."""
        with torch.no_grad():
            self.logit_scale.fill_(math.log(10.0))
            self.q_bias.zero_()
            self.v_bias.zero_()

    def position_bias(self, inputs: PositionBiasInputs) -> Tensor:
        """``[num_heads, N, N]`` contiguous: ``16 * sigmoid(cpb_mlp(coords_table))`` gathered
        by ``index``. The MLP runs on the ``(2M - 1)**2`` offsets, not the ``N * N`` pairs.

        Without autograd (and outside tracing), the result is kept per window size until
        the MLP's weights change (in place or replaced), so inference computes it once.
        """
        table = inputs.coords_table
        cacheable = not torch.is_grad_enabled() and not is_transforming(table)
        if cacheable:
            weights = tuple((p.data_ptr(), p._version) for p in self.cpb_mlp.parameters())
            key = (inputs.window_size, inputs.pretrained_window_size, table.device, autocast_dtype(table.device.type))
            hit = self._bias_cache.get(key)
            if hit is not None and hit[0] == weights:
                return hit[1]
        N = inputs.window_size * inputs.window_size
        bias = 16 * torch.sigmoid(self.cpb_mlp(table))  # [(2M - 1)**2, heads]
        bias = bias[inputs.index].view(N, N, self.num_heads).permute(2, 0, 1).contiguous()
        if cacheable:
            self._bias_cache[key] = (weights, bias)
            if len(self._bias_cache) > 8:
                self._bias_cache.popitem(last=False)
        return bias

    def forward(self, tokens: Tensor, inputs: PositionBiasInputs, mask: Optional[Tensor] = None) -> Tensor:
        """:meth:`attend`, then :meth:`project`: ``[B, num_windows * N, C]`` -> same shape,
        before the residual (and before ``norm1``)."""
        return self.project(self.attend(tokens, inputs, mask))

    def project(self, attended: Tensor) -> Tensor:
        """The output projection and its dropout, on ``[..., C]`` rows of :meth:`attend`."""
        return self.proj_drop(self.proj(attended))

    def attend(
        self,
        tokens: Tensor,
        inputs: PositionBiasInputs,
        mask: Optional[Tensor] = None,
        rows: Optional[RowMap] = None,
    ) -> Tensor:
        """Attend inside each window, all windows of the batch at once, before the output
        projection.

        Args:
            tokens: ``[B, num_windows * N, C]`` in window order, ``N = inputs.window_size ** 2``,
                or with ``rows``, ``[B, R, C]`` tokens that ``rows`` places in it; the
                window order's other rows are padding, zeros before the qkv projection.
            inputs: the position bias inputs of this window size.
            mask: optional additive ``[num_windows, N, N]`` mask, shared by the batch.
            rows: optional map of ``tokens`` into the window order
                (:meth:`~.window_layout.WindowLayout.real_row_map`).

        Returns:
            The heads' outputs side by side, in the order and shape of ``tokens``.
        """
        B = tokens.shape[0]
        qkv_bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias, requires_grad=False), self.v_bias))
        qkv = project_into_window_order(tokens, self.qkv.weight, qkv_bias, rows)
        q, k, v = split_heads(qkv, inputs.window_size * inputs.window_size, self.num_heads)
        scale = torch.clamp(self.logit_scale, max=LOGIT_SCALE_MAX).exp().to(q.dtype)  # [heads, 1, 1]
        q = F.normalize(q, dim=-1) * scale
        k = F.normalize(k, dim=-1)

        dropout_p = self.attn_drop_rate if self.training else 0.0
        out = attend_in_windows(q, k, v, self.position_bias(inputs), mask, B, 1.0, self.attn_impl, dropout_p)
        return out if rows is None else crop_rows(out, rows)
