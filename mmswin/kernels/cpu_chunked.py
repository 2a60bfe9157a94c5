"""A Swin block computed a chunk of windows at a time, on a CPU in fp32: inference and training.

Chosen by :func:`mmswin.kernels.choose_block_impl` only; everything here assumes plain
eager fp32 CPU tensors, and :func:`block_forward_in_place` also serves inference under
bf16 autocast on CPUs with native bf16.

Tokens of a Swin block interact only inside a window, and everything else in the block
(layer norms, linear layers, GELU, residual adds) works token by token, so the whole
block can run on a few dozen windows at a time. On a CPU this keeps every intermediate
(qkv, the attention output, the ``4C``-wide MLP layer) in cache and lets the allocator
reuse the same small buffers, where the op-by-op formulation spends about as long on
page faults and memory traffic as on arithmetic outside the matrix products.

* :func:`block_forward_in_place` (inference, no autograd) writes the block's output
  into its input. Under bf16 autocast it keeps bf16 copies of the linear weights
  between passes (:func:`weights_in_autocast_dtype`).
* :class:`SwinBlockFunction` (training) is one autograd node per block. It keeps the
  block input, qkv, the attention output, the mid-block residual and the MLP's hidden
  layer (about 10 floats per token and channel; the op-by-op graph keeps about 20),
  and runs the backward pass chunk by chunk, recomputing the layer norms, the GELU and
  the attention weights.

Padded tokens (the grid is padded to a multiple of the window) are keys and values of
the attention as in the reference; they skip the output projection and the MLP, whose
results for them are never used.

Tokens are in the window order of :mod:`mmswin.models.layers.window_layout`:
``[B, L, C]``, ``L = num_windows * N``; one chunk is a :class:`WindowChunk`.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from mmswin.models.layers.swin_block import SwinBlock
    from mmswin.models.layers.window_layout import WindowChunk, WindowLayout

# Tokens per chunk: enough rows for efficient matrix products, few enough that a
# chunk's intermediates (qkv, the 4C-wide MLP layer) stay in the CPU's cache.
CHUNK_TOKENS = 4096


class BlockParams(NamedTuple):
    """The tensors of one Swin block (:func:`block_params`), in forward order."""

    norm1_weight: Tensor
    norm1_bias: Tensor
    qkv_weight: Tensor  # [3C, C]
    qkv_bias: Optional[Tensor]  # [3C]
    bias_table: Tensor  # [(2M - 1)**2, heads]
    proj_weight: Tensor  # [C, C]
    proj_bias: Tensor
    norm2_weight: Tensor
    norm2_bias: Tensor
    fc1_weight: Tensor  # [hidden, C]
    fc1_bias: Tensor
    fc2_weight: Tensor  # [C, hidden]
    fc2_bias: Tensor


class BlockSpec(NamedTuple):
    """The non-tensor settings of one Swin block."""

    num_heads: int
    scale: float
    norm1_eps: float
    norm2_eps: float
    shifted: bool
    relative_position_index: Tensor  # [N * N] long, into the bias table


def block_params(block: SwinBlock) -> BlockParams:
    """The block's tensors, in :class:`BlockParams` order."""
    attn, mlp = block.attn, block.mlp
    return BlockParams(
        block.norm1.weight,
        block.norm1.bias,
        attn.qkv.weight,
        attn.qkv.bias,
        attn.relative_position_bias_table,
        attn.proj.weight,
        attn.proj.bias,
        block.norm2.weight,
        block.norm2.bias,
        mlp.fc1.weight,
        mlp.fc1.bias,
        mlp.fc2.weight,
        mlp.fc2.bias,
    )


def block_spec(block: SwinBlock, layout: WindowLayout) -> BlockSpec:
    """The block's settings on ``layout`` (a shifted block on a one-window grid is regular)."""
    return BlockSpec(
        block.attn.num_heads,
        block.attn.scale,
        block.norm1.eps,
        block.norm2.eps,
        block.shifted and layout.shift_size > 0,
        block.attn.relative_position_index,
    )


def block_forward_autograd(block: SwinBlock, x: Tensor, layout: WindowLayout) -> Tensor:
    """The block as one autograd node (:class:`SwinBlockFunction`), stochastic depth drawn
    here per image and branch."""
    scales = [None, None]
    if block.training and block.drop_path.drop_prob > 0:
        keep_prob = 1.0 - block.drop_path.drop_prob
        scales = [x.new_empty(x.shape[0]).bernoulli_(keep_prob).div_(keep_prob) for _ in range(2)]
    return SwinBlockFunction.apply(x, *scales, layout, block_spec(block, layout), CHUNK_TOKENS, *block_params(block))


# The linear layers' tensors of a block, which autocast casts on every pass.
_LINEAR_PARAMS = (
    'qkv_weight',
    'qkv_bias',
    'proj_weight',
    'proj_bias',
    'fc1_weight',
    'fc1_bias',
    'fc2_weight',
    'fc2_bias',
)
# id(weight) -> (a weak reference to it, its version counter and storage, its cast copy)
_CAST_WEIGHTS: dict[int, tuple] = {}


def weights_in_autocast_dtype(params: BlockParams) -> BlockParams:
    """Under CPU autocast, ``params`` with the linear layers' weights and biases in the
    autocast dtype (the values autocast itself would cast them to), others unchanged.

    Inference only: each copy is kept as long as its weight lives, and made again once
    the weight changes (in place, as an optimizer step or ``load_state_dict`` does, or
    replaced), so that repeated passes do not cast every weight again (Swin-T: 28 M
    weights read in fp32 and written in bf16 on every pass). It costs the copies' memory:
    half of the fp32 weights' in bf16.
    """
    dtype = torch.get_autocast_dtype('cpu')
    cast = {}
    for name in _LINEAR_PARAMS:
        weight = getattr(params, name)
        if weight is None or weight.dtype == dtype:
            continue
        state = (weight._version, weight.data_ptr(), dtype)
        entry = _CAST_WEIGHTS.get(id(weight))
        known = entry is not None and entry[0]() is weight
        if not known:  # a weight seen for the first time: forget its copy when it dies
            weakref.finalize(weight, _CAST_WEIGHTS.pop, id(weight), None)
        if not known or entry[1] != state:
            entry = (weakref.ref(weight), state, weight.detach().to(dtype))
            _CAST_WEIGHTS[id(weight)] = entry
        cast[name] = entry[2]
    return params._replace(**cast)


class ScratchBuffers:
    """Scratch matrices that every chunk of a stage's blocks reuses (inference).

    A chunk's qkv and MLP layer are megabytes; allocated afresh for each chunk, the
    allocator hands them back to the OS and every chunk pays page faults again for
    memory it just gave up. ``take`` returns a view of one growing buffer per name.
    """

    def __init__(self):
        self._flat: dict[str, Tensor] = {}

    def take(self, name: str, rows: int, cols: int, like: Tensor) -> Tensor:
        """A ``[rows, cols]`` matrix of ``like``'s dtype and device, contents undefined."""
        flat = self._flat.get(name)
        if flat is None or flat.numel() < rows * cols or flat.dtype != like.dtype or flat.device != like.device:
            flat = like.new_empty(rows * cols)
            self._flat[name] = flat
        return flat[: rows * cols].view(rows, cols)


def attention_biases(
    params: BlockParams, spec: BlockSpec, layout: WindowLayout, chunks: list[WindowChunk]
) -> list[Tensor]:
    """Per chunk, the additive attention bias: ``[1, heads, N, N]`` (the relative position
    bias alone, broadcast) for mask-free chunks, ``[W, heads, N, N]`` (bias + mask) else."""
    N = layout.window_size * layout.window_size
    bias = params.bias_table[spec.relative_position_index].view(N, N, spec.num_heads)
    bias = bias.permute(2, 0, 1).contiguous().unsqueeze(0)  # contiguous: SDPA would copy a strided mask
    mask = layout.attn_mask(spec.shifted, bias.dtype)
    return [bias + mask[chunk.first : chunk.last].unsqueeze(1) if chunk.masked else bias for chunk in chunks]


def window_attention(qkv: Tensor, bias: Tensor, num_heads: int, scale: float) -> Tensor:
    """``[W * N, 3C]`` qkv of whole windows -> ``[W * N, C]`` attention output (before the
    output projection), with ``bias`` ``[W or 1, heads, N, N]`` added to the scores.

    In fp32, one batched product per head on strided views of qkv, bias, scale and
    product in one ``baddbmm``, and one in-place softmax over all heads. Under autocast
    (bf16 qkv), the two products run in bf16 and the scores, once the fp32 ``bias`` is
    added, stay fp32 through the softmax, as CUDA autocast computes softmax (SDPA's CPU
    kernel was slower here: docs/benchmark.md).
    """
    rows, channels = qkv.shape[0], qkv.shape[1] // 3
    N = bias.shape[-1]
    windows, head_dims = rows // N, channels // num_heads
    per_head = qkv.view(windows, N, 3, num_heads, head_dims)
    if qkv.dtype != bias.dtype:
        q, k, v = per_head.permute(2, 0, 3, 1, 4).unbind(0)  # [W, heads, N, d]
        scores = torch.add(bias, torch.matmul(q, k.transpose(-2, -1)), alpha=scale)  # fp32
        weights = torch.softmax(scores, dim=-1).to(qkv.dtype)
        return torch.matmul(weights, v).transpose(1, 2).reshape(rows, channels)
    scores = qkv.new_empty(num_heads, windows, N, N)
    bias = bias.transpose(0, 1)  # [heads, W or 1, N, N]
    for head in range(num_heads):
        q, k = per_head[:, :, 0, head], per_head[:, :, 1, head]  # [W, N, d] views
        torch.baddbmm(bias[head], q, k.transpose(1, 2), alpha=scale, out=scores[head])
    torch.softmax(scores, -1, out=scores)
    out = qkv.new_empty(windows, N, num_heads, head_dims)
    for head in range(num_heads):
        out[:, :, head].copy_(torch.bmm(scores[head], per_head[:, :, 2, head]))
    return out.view(rows, channels)


def window_attention_backward(
    qkv: Tensor, out: Tensor, grad_out: Tensor, bias: Tensor, num_heads: int, scale: float
) -> tuple[Tensor, Tensor]:
    """Gradients of :func:`window_attention` w.r.t. ``qkv`` (``[W * N, 3C]``) and the bias
    (``[heads, N, N]``, summed over windows), given its output ``out`` and ``grad_out``
    (both ``[W * N, C]``). The attention weights are recomputed."""
    rows, channels = out.shape
    N = bias.shape[-1]
    head_dims = channels // num_heads
    windows = rows // N
    # One head-major copy of q, k, v and one of grad_out: every product below is then a
    # batched matmul on contiguous or transposed ``[W * heads, N, d]`` views, with no
    # further copies inside matmul.
    q, k, v = qkv.view(windows, N, 3, num_heads, head_dims).permute(2, 0, 3, 1, 4).contiguous().unbind(0)
    grad_heads = grad_out.view(windows, N, num_heads, head_dims).transpose(1, 2).contiguous()
    # softmax backward's row term, sum_d(grad_out * out), taken in the token layout
    delta = (grad_out * out).view(windows, N, num_heads, head_dims).sum(-1).transpose(1, 2).unsqueeze(-1)
    weights = torch.softmax(torch.matmul(q, k.transpose(-2, -1)).mul_(scale).add_(bias), dim=-1)  # [W, heads, N, N]
    grad_qkv = qkv.new_empty(windows, N, 3, num_heads, head_dims)
    grad_qkv[:, :, 2].copy_(torch.matmul(weights.transpose(-2, -1), grad_heads).transpose(1, 2))
    grad_scores = torch.matmul(grad_heads, v.transpose(-2, -1))
    grad_scores.sub_(delta).mul_(weights)
    grad_bias = grad_scores.sum(0)
    grad_scores.mul_(scale)
    grad_qkv[:, :, 0].copy_(torch.matmul(grad_scores, k).transpose(1, 2))
    grad_qkv[:, :, 1].copy_(torch.matmul(grad_scores.transpose(-2, -1), q).transpose(1, 2))
    return grad_qkv.view(rows, 3 * channels), grad_bias


def _linear_into(out: Tensor, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """``out = x @ weight.T + bias``, written into ``out`` (a buffer the caller keeps)."""
    if bias is None:
        return torch.mm(x, weight.t(), out=out)
    return torch.addmm(bias, x, weight.t(), out=out)


def _add_linear_(tokens: Tensor, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """``tokens += x @ weight.T + bias`` in place: the residual add is fused into the
    product (``addmm_``) unless autocast has made the dtypes differ."""
    if tokens.dtype == x.dtype == weight.dtype and not torch.is_autocast_enabled('cpu'):
        if bias is not None:
            tokens.add_(bias)
        return tokens.addmm_(x, weight.t())
    return tokens.add_(F.linear(x, weight, bias))


def _chunk_tokens(image: Tensor, chunk: WindowChunk) -> Tensor:
    """The chunk's ``[n, C]`` rows of ``image`` (``[L, C]``): a view in regular order, a
    gathered copy in shifted order."""
    return image[chunk.rows] if chunk.gather is None else image.index_select(0, chunk.gather)


def _real_rows(tokens: Tensor, chunk: WindowChunk) -> Tensor:
    """The chunk's real tokens among its ``[n, ...]`` rows (a copy if some are padding)."""
    return tokens if chunk.valid_rows is None else tokens.index_select(0, chunk.valid_rows)


def _to_all_rows(real: Tensor, chunk: WindowChunk, num_rows: int) -> Tensor:
    """Inverse of :func:`_real_rows`: zeros in the padded rows."""
    if chunk.valid_rows is None:
        return real
    return real.new_zeros(num_rows, real.shape[1]).index_copy_(0, chunk.valid_rows, real)


def padded_normed(real_normed: Tensor, chunk: WindowChunk, num_rows: int) -> Tensor:
    """The chunk's ``[n, C]`` norm1 output from that of its real tokens (``[nv, C]``):
    padded tokens enter attention as zero vectors, as in the reference."""
    if chunk.valid_rows is None:
        return real_normed
    return real_normed.new_zeros(num_rows, real_normed.shape[1]).index_copy_(0, chunk.valid_rows, real_normed)


def _write_real_rows(image: Tensor, chunk: WindowChunk, real: Tensor) -> None:
    """Write the chunk's real tokens (``[nv, C]``) to their places in ``image`` (``[L, C]``)."""
    if chunk.scatter is None:
        image[chunk.rows] = real
    else:
        image.index_copy_(0, chunk.scatter, real)


def block_forward_in_place(
    x: Tensor,
    layout: WindowLayout,
    params: BlockParams,
    spec: BlockSpec,
    chunk_tokens: int = CHUNK_TOKENS,
    scratch: Optional[ScratchBuffers] = None,
) -> Tensor:
    """One Swin block without autograd, chunk by chunk, written into ``x``.

    ``x``: ``[B, L, C]`` tokens in regular window order, owned by the caller; the real
    tokens are overwritten with the block's output (padded ones are left alone) and
    ``x`` is returned. The residual adds happen in place. ``scratch`` may be shared by
    the blocks of a stage so that they reuse the same qkv and MLP buffers.
    """
    channels = x.shape[2]
    hidden_dims = params.fc1_weight.shape[0]
    N = layout.window_size * layout.window_size
    chunks = layout.window_chunks(spec.shifted, max(1, chunk_tokens // N))
    biases = attention_biases(params, spec, layout, chunks)
    scratch = scratch if scratch is not None else ScratchBuffers()
    # Under autocast the products return another dtype than x: no preallocated outputs.
    autocast = torch.is_autocast_enabled('cpu')
    into_scratch = x.dtype == params.qkv_weight.dtype and not autocast
    if autocast:
        params = weights_in_autocast_dtype(params)
    for image in x:  # [L, C]
        for chunk, bias in zip(chunks, biases):
            tokens = _real_rows(_chunk_tokens(image, chunk), chunk)  # a view of x when regular and unpadded
            num_rows, num_real = chunk.rows.stop - chunk.rows.start, tokens.shape[0]
            normed = F.layer_norm(tokens, (channels,), params.norm1_weight, params.norm1_bias, spec.norm1_eps)
            normed = padded_normed(normed, chunk, num_rows)
            if into_scratch:
                qkv = scratch.take('qkv', num_rows, 3 * channels, x)
                _linear_into(qkv, normed, params.qkv_weight, params.qkv_bias)
            else:
                qkv = F.linear(normed, params.qkv_weight, params.qkv_bias)
            attended = window_attention(qkv, bias, spec.num_heads, spec.scale)
            _add_linear_(tokens, _real_rows(attended, chunk), params.proj_weight, params.proj_bias)
            normed = F.layer_norm(tokens, (channels,), params.norm2_weight, params.norm2_bias, spec.norm2_eps)
            if into_scratch:
                hidden = scratch.take('hidden', num_real, hidden_dims, x)
                torch.ops.aten.gelu_(_linear_into(hidden, normed, params.fc1_weight, params.fc1_bias))
            else:
                hidden = F.gelu(F.linear(normed, params.fc1_weight, params.fc1_bias))
            _add_linear_(tokens, hidden, params.fc2_weight, params.fc2_bias)
            if chunk.scatter is not None:
                image.index_copy_(0, chunk.scatter, tokens)
    return x


def _layer_norm_backward(
    grad: Tensor, x: Tensor, mean: Tensor, rstd: Tensor, params: BlockParams, grads: dict, name: str
) -> Tensor:
    """Gradient of the block's layer norm ``name`` (``'norm1'`` / ``'norm2'``) w.r.t. its
    input ``x``, from the saved ``mean`` and ``rstd``; the gradients of its weight and
    bias are added to ``grads``."""
    weight, bias = getattr(params, f'{name}_weight'), getattr(params, f'{name}_bias')
    grad_x, grad_weight, grad_bias = torch.ops.aten.native_layer_norm_backward(
        grad, x, (x.shape[-1],), mean, rstd, weight, bias, (True, True, True)
    )
    grads[f'{name}_weight'] += grad_weight
    grads[f'{name}_bias'] += grad_bias
    return grad_x


def _kept_branches(scale: Optional[Tensor], batch: int) -> list[bool]:
    """Per image, whether stochastic depth keeps a residual branch (``scale`` is the
    ``[B]`` factor or None). A dropped branch is multiplied by zero, so its forward and
    backward work is skipped: with the usual linear rule, about ``drop_path_rate / 2``
    of the blocks' work."""
    return [True] * batch if scale is None else [bool(kept) for kept in scale.ne(0).tolist()]


class SwinBlockFunction(torch.autograd.Function):
    """One Swin block as a single autograd node (see the module docstring).

    ``apply(x, attn_scale, mlp_scale, layout, spec, chunk_tokens, *params)``: ``x`` is
    ``[B, L, C]`` in regular window order; ``attn_scale`` / ``mlp_scale`` are ``[B]``
    per-image factors of the two residual branches (stochastic depth) or None;
    ``params`` are the :class:`BlockParams`. Returns ``[B, L, C]``, zero at padding.
    """

    @staticmethod
    def forward(
        ctx,
        x: Tensor,
        attn_scale: Optional[Tensor],
        mlp_scale: Optional[Tensor],
        layout: WindowLayout,
        spec: BlockSpec,
        chunk_tokens: int,
        *param_list: Tensor,
    ) -> Tensor:
        params = BlockParams(*param_list)
        batch, length, channels = x.shape
        N = layout.window_size * layout.window_size
        chunks = layout.window_chunks(spec.shifted, max(1, chunk_tokens // N))
        biases = attention_biases(params, spec, layout, chunks)
        num_real = chunks[-1].packed.stop
        hidden_dims = params.fc1_weight.shape[0]
        # Saved for backward: the stats of norm1 and qkv for every token (chunk order),
        # the attention output, the mid-block residual, the stats of norm2 and the MLP's
        # hidden layer for the real tokens (packed).
        norm1_stats = x.new_empty(2, batch, num_real)
        qkv = x.new_empty(batch, length, 3 * channels)
        attended = x.new_empty(batch, num_real, channels)
        mid = x.new_empty(batch, num_real, channels)
        norm2_stats = x.new_empty(2, batch, num_real)
        hidden = x.new_empty(batch, num_real, hidden_dims)
        out = torch.zeros_like(x) if layout.needs_padding else torch.empty_like(x)
        attn_kept, mlp_kept = _kept_branches(attn_scale, batch), _kept_branches(mlp_scale, batch)
        for b in range(batch):
            for chunk, bias in zip(chunks, biases):
                rows, packed = chunk.rows, chunk.packed
                tokens = _real_rows(_chunk_tokens(x[b], chunk), chunk)
                if attn_kept[b]:
                    normed, mean, rstd = torch.native_layer_norm(
                        tokens, (channels,), params.norm1_weight, params.norm1_bias, spec.norm1_eps
                    )
                    norm1_stats[0, b, packed] = mean.view(-1)
                    norm1_stats[1, b, packed] = rstd.view(-1)
                    normed = padded_normed(normed, chunk, rows.stop - rows.start)
                    chunk_qkv = _linear_into(qkv[b, rows], normed, params.qkv_weight, params.qkv_bias)
                    chunk_attended = _real_rows(window_attention(chunk_qkv, bias, spec.num_heads, spec.scale), chunk)
                    attended[b, packed] = chunk_attended
                    chunk_mid = _linear_into(mid[b, packed], chunk_attended, params.proj_weight, params.proj_bias)
                    if attn_scale is not None:
                        chunk_mid.mul_(attn_scale[b])
                    chunk_mid += tokens
                else:  # stochastic depth dropped the branch for this image: skip its work
                    chunk_mid = mid[b, packed]
                    chunk_mid.copy_(tokens)
                if not mlp_kept[b]:
                    _write_real_rows(out[b], chunk, chunk_mid)
                    continue
                normed, mean, rstd = torch.native_layer_norm(
                    chunk_mid, (channels,), params.norm2_weight, params.norm2_bias, spec.norm2_eps
                )
                norm2_stats[0, b, packed] = mean.view(-1)
                norm2_stats[1, b, packed] = rstd.view(-1)
                chunk_hidden = _linear_into(hidden[b, packed], normed, params.fc1_weight, params.fc1_bias)
                chunk_out = F.linear(F.gelu(chunk_hidden), params.fc2_weight, params.fc2_bias)
                if mlp_scale is not None:
                    chunk_out.mul_(mlp_scale[b])
                _write_real_rows(out[b], chunk, chunk_out.add_(chunk_mid))
        ctx.save_for_backward(
            x, attn_scale, mlp_scale, norm1_stats, qkv, attended, mid, norm2_stats, hidden, *param_list
        )
        ctx.layout, ctx.spec, ctx.chunk_tokens = layout, spec, chunk_tokens
        ctx.kept = attn_kept, mlp_kept
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, attn_scale, mlp_scale, norm1_stats, qkv, attended, mid, norm2_stats, hidden, *param_list = ctx.saved_tensors
        params = BlockParams(*param_list)
        layout, spec = ctx.layout, ctx.spec
        batch, length, channels = x.shape
        N = layout.window_size * layout.window_size
        chunks = layout.window_chunks(spec.shifted, max(1, ctx.chunk_tokens // N))
        biases = attention_biases(params, spec, layout, chunks)
        grad_out = grad_out.contiguous()
        grads = {name: None if p is None else torch.zeros_like(p) for name, p in params._asdict().items()}
        grad_bias = x.new_zeros(spec.num_heads, N, N)
        grad_x = torch.zeros_like(x) if layout.needs_padding else torch.empty_like(x)
        attn_kept, mlp_kept = ctx.kept
        for b in range(batch):
            for chunk, bias in zip(chunks, biases):
                rows, packed = chunk.rows, chunk.packed
                num_rows = rows.stop - rows.start
                grad = grad_out[b, rows] if chunk.scatter is None else grad_out[b].index_select(0, chunk.scatter)
                if not mlp_kept[b] and not attn_kept[b]:
                    _write_real_rows(grad_x[b], chunk, grad)
                    continue

                # MLP branch: out = mid + mlp_scale * fc2(gelu(fc1(norm2(mid)))), real tokens only.
                if mlp_kept[b]:
                    chunk_mid, chunk_hidden = mid[b, packed], hidden[b, packed]
                    mean, rstd = norm2_stats[0, b, packed, None], norm2_stats[1, b, packed, None]
                    normed = torch.addcmul(params.norm2_bias, (chunk_mid - mean) * rstd, params.norm2_weight)
                    grad_mlp = grad if mlp_scale is None else grad * mlp_scale[b]
                    grads['fc2_weight'].addmm_(grad_mlp.t(), F.gelu(chunk_hidden))
                    grads['fc2_bias'] += grad_mlp.sum(0)
                    grad_hidden = torch.ops.aten.gelu_backward(grad_mlp @ params.fc2_weight, chunk_hidden)
                    grads['fc1_weight'].addmm_(grad_hidden.t(), normed)
                    grads['fc1_bias'] += grad_hidden.sum(0)
                    grad_mid = _layer_norm_backward(
                        grad_hidden @ params.fc1_weight, chunk_mid, mean, rstd, params, grads, 'norm2'
                    )
                    grad_mid += grad  # the residual
                else:
                    grad_mid = grad
                if not attn_kept[b]:
                    _write_real_rows(grad_x[b], chunk, grad_mid)
                    continue

                # Attention branch: mid = x + attn_scale * proj(attention(qkv(norm1(x)))).
                grad_proj = grad_mid if attn_scale is None else grad_mid * attn_scale[b]
                chunk_attended = attended[b, packed]
                grads['proj_weight'].addmm_(grad_proj.t(), chunk_attended)
                grads['proj_bias'] += grad_proj.sum(0)
                grad_attended = _to_all_rows(grad_proj @ params.proj_weight, chunk, num_rows)
                grad_qkv, chunk_grad_bias = window_attention_backward(
                    qkv[b, rows],
                    _to_all_rows(chunk_attended, chunk, num_rows),
                    grad_attended,
                    bias,
                    spec.num_heads,
                    spec.scale,
                )
                grad_bias += chunk_grad_bias
                if grads['qkv_bias'] is not None:
                    grads['qkv_bias'] += grad_qkv.sum(0)  # padded tokens' qkv is the bias: all rows count
                grad_qkv = _real_rows(grad_qkv, chunk)
                tokens = _real_rows(_chunk_tokens(x[b], chunk), chunk)
                mean, rstd = norm1_stats[0, b, packed, None], norm1_stats[1, b, packed, None]
                normed = torch.addcmul(params.norm1_bias, (tokens - mean) * rstd, params.norm1_weight)
                grads['qkv_weight'].addmm_(grad_qkv.t(), normed)
                grad_tokens = _layer_norm_backward(
                    grad_qkv @ params.qkv_weight, tokens, mean, rstd, params, grads, 'norm1'
                )
                _write_real_rows(grad_x[b], chunk, grad_tokens.add_(grad_mid))  # + the residual
        grads['bias_table'].index_add_(
            0, spec.relative_position_index, grad_bias.permute(1, 2, 0).reshape(N * N, spec.num_heads)
        )
        return (grad_x, None, None, None, None, None, *grads.values())
