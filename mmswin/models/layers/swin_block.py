"""The Swin block: (S)W-MSA and an MLP, each pre-norm with a residual (Liu et al., 2021),
and the Swin V2 block, the same two branches with res-post-norm (:class:`SwinBlockV2`).

:meth:`SwinBlock.forward_reference` is the one definition of the block, the
whole-tensor formulation. :meth:`SwinBlock.forward` runs the block by the
implementation :func:`mmswin.kernels.choose_block_impl` picks for the call; every
other implementation is tested against the reference, forward and backward.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn

from mmswin.kernels import BLOCK_IMPLS, autocast_dtype, check_block_impl, run_block, skips_dropped_branches

from .attention import PositionBiasInputs, WindowMSA, WindowMSAV2
from .token_gather import crop_rows, pad_rows
from .window_layout import WindowLayout

__all__ = ['BLOCK_IMPLS', 'DropPath', 'Mlp', 'SwinBlock', 'SwinBlockV2']


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch of a sample with probability ``p``."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        return x * self._draw_scale(x)

    def _draw_scale(self, x: Tensor) -> Tensor:
        """Per sample ``0`` (dropped) or ``1 / keep_prob``, shaped to broadcast over ``x``."""
        keep_prob = 1.0 - self.drop_prob
        keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep_prob)
        return keep.div_(keep_prob)

    def residual(self, x: Tensor, branch: Callable[[Tensor], Tensor]) -> Tensor:
        """``x + self(branch(x))``, the same values from the same random draws; where
        :func:`mmswin.kernels.skips_dropped_branches` allows (eager CPU code), the
        branch runs only for the samples it keeps."""
        if self.drop_prob == 0.0 or not self.training:
            return x + branch(x)
        scale = self._draw_scale(x)
        if not skips_dropped_branches(x):
            return x + branch(x) * scale
        kept = torch.nonzero(scale.view(-1)).view(-1)
        if kept.numel() == x.shape[0]:
            return x + branch(x) * scale
        if kept.numel() == 0:
            # Still one sample's branch, times zero: its parameters get (zero) gradients,
            # as DDP expects of every parameter in every step.
            return x + branch(x[:1]) * scale[:1]
        return x.index_add(0, kept, branch(x.index_select(0, kept)) * scale.index_select(0, kept))

    def extra_repr(self) -> str:
        return f'drop_prob={self.drop_prob}'


class Mlp(nn.Module):
    """Linear -> GELU -> dropout -> Linear -> dropout."""

    def __init__(self, embed_dims: int, hidden_dims: int, drop_rate: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, hidden_dims)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dims, embed_dims)
        self.drop = nn.Dropout(drop_rate)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def residual_branches(
    x: Tensor, layout: WindowLayout, drop_path: DropPath, attention: Callable, mlp: Callable
) -> Tensor:
    """A block's two residual branches, ``x + attention(x)`` then ``+ mlp``, each
    through ``drop_path`` (:meth:`DropPath.residual`), on the real tokens of ``[B, L, C]``
    tokens in regular window order. On a padded grid the branches never see padding
    and the padded output tokens are zero."""
    stream = layout.real_row_map(shifted=False)
    real = x if stream is None else crop_rows(x, stream)
    real = drop_path.residual(drop_path.residual(real, attention), mlp)
    return real if stream is None else pad_rows(real, stream)


class SwinBlock(nn.Module):
    """One pre-norm Swin block on tokens in a stage's regular window order.

    Works on ``[B, L, C]`` tokens, ``L = num_windows * N`` (see
    :mod:`mmswin.models.layers.window_layout`); a shifted block gathers its input into
    the shifted window order and its output back. ``block_impl`` is one of
    :data:`~mmswin.kernels.BLOCK_IMPLS` (see :func:`~mmswin.kernels.choose_block_impl`);
    ``attn_impl`` (``'auto'``, ``'sdpa'`` or ``'eager'``) only says how the reference
    computes the attention op (:func:`~mmswin.kernels.choose_attention_impl`).
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        window_size: int,
        shifted: bool,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        attn_impl: str = 'auto',
        block_impl: str = 'auto',
    ):
        super().__init__()
        check_block_impl(block_impl)
        self.shifted = shifted
        self.block_impl = block_impl
        self.norm1 = nn.LayerNorm(embed_dims)
        self.attn = WindowMSA(
            embed_dims,
            num_heads,
            window_size,
            qkv_bias=qkv_bias,
            qk_scale=qk_scale,
            attn_drop_rate=attn_drop_rate,
            proj_drop_rate=drop_rate,
            attn_impl=attn_impl,
        )
        self.drop_path = DropPath(drop_path_rate)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), drop_rate)

    def forward(
        self, x: Tensor, layout: WindowLayout, workspace: Optional[dict] = None, owns_input: bool = False
    ) -> Tensor:
        """``[B, L, C]`` tokens in regular window order -> same shape; padded tokens of
        the output carry no meaning. ``workspace`` (a dict kept for one pass over several
        blocks) and ``owns_input`` (``x`` may be overwritten) let a CPU kernel reuse
        memory; neither changes the result."""
        return run_block(self, x, layout, workspace, owns_input)

    def forward_reference(self, x: Tensor, layout: WindowLayout) -> Tensor:
        """The block on all windows of the batch at once: the definition every other
        implementation is tested against.

        Padded tokens enter the qkv projection as zeros (as in the reference that pads
        the normalised tokens), so their q, k and v are the projection's bias, added
        without a product (:func:`~.attention.project_into_window_order`). They get no
        norm, no output projection and no MLP, whose results for them are never used:
        on a padded grid the output's padded tokens are zero.
        """
        shifted = self.shifted and layout.shift_size > 0
        # The mask in the dtype attention computes in, cast once per layout, not per block.
        dtype = autocast_dtype(x.device.type) or self.attn.relative_position_bias_table.dtype
        mask = layout.attn_mask(shifted, dtype)
        rows = layout.real_row_map(shifted)

        def attention(tokens: Tensor) -> Tensor:
            return self.attn.project(self.attn.attend(self.norm1(tokens), mask, rows))

        def mlp(tokens: Tensor) -> Tensor:
            return self.mlp(self.norm2(tokens))

        return residual_branches(x, layout, self.drop_path, attention, mlp)

    def dropout_active(self) -> bool:
        """Whether a dropout layer (not stochastic depth) is active: training mode, rate > 0."""
        rates = (self.mlp.drop.p, self.attn.attn_drop_rate, self.attn.proj_drop.p)
        return self.training and any(rate > 0 for rate in rates)


class SwinBlockV2(nn.Module):
    """One Swin V2 block on tokens in a stage's regular window order: res-post-norm,
    ``x = x + drop_path(norm1(attn(x)))``, then ``x = x + drop_path(norm2(mlp(x)))``;
    attention (:class:`~.attention.WindowMSAV2`) sees the un-normalised stream.

    Works on ``[B, L, C]`` tokens as :class:`SwinBlock` does, with the same layouts,
    gathers and masks, and always as the whole-tensor formulation: it does not consult
    :func:`mmswin.kernels.choose_block_impl`, whose CPU chunked kernels compute V1's
    pre-norm block with a learned bias table, not this one. ``attn_impl`` says how the
    attention op runs (:func:`~mmswin.kernels.choose_attention_impl`).
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        shifted: bool,
        mlp_ratio: float = 4.0,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        attn_impl: str = 'auto',
    ):
        super().__init__()
        self.shifted = shifted
        self.norm1 = nn.LayerNorm(embed_dims)  # applied to the attention's output
        self.attn = WindowMSAV2(
            embed_dims, num_heads, attn_drop_rate=attn_drop_rate, proj_drop_rate=drop_rate, attn_impl=attn_impl
        )
        self.drop_path = DropPath(drop_path_rate)
        self.norm2 = nn.LayerNorm(embed_dims)  # applied to the MLP's output
        self.mlp = Mlp(embed_dims, int(embed_dims * mlp_ratio), drop_rate)

    def reset_parameters(self) -> None:
        """The V2 initial values of the post-norms: weight 0 and bias 0, so that a fresh
        block starts as the identity."""
        for norm in (self.norm1, self.norm2):
            nn.init.zeros_(norm.weight)
            nn.init.zeros_(norm.bias)

    def forward(self, x: Tensor, layout: WindowLayout, bias_inputs: PositionBiasInputs) -> Tensor:
        """``[B, L, C]`` tokens in regular window order -> same shape; ``bias_inputs`` are
        those of ``layout.window_size``.

        Padded tokens enter the qkv projection as zeros (the reference pads the stream
        itself), so their q, k and v are its bias, added without a product. They get no
        output projection, norm or MLP, whose results for them are never used: on a
        padded grid the output's padded tokens are zero.
        """
        shifted = self.shifted and layout.shift_size > 0
        dtype = autocast_dtype(x.device.type) or self.norm1.weight.dtype
        mask = layout.attn_mask(shifted, dtype)
        rows = layout.real_row_map(shifted)

        def attention(tokens: Tensor) -> Tensor:
            return self.norm1(self.attn.project(self.attn.attend(tokens, bias_inputs, mask, rows)))

        def mlp(tokens: Tensor) -> Tensor:
            return self.norm2(self.mlp(tokens))

        return residual_branches(x, layout, self.drop_path, attention, mlp)
