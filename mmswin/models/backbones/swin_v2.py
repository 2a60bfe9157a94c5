"""Swin Transformer V2 backbone for dense prediction (Liu et al., CVPR 2022).

Everything but the stage is V1's (:class:`~.swin.SwinBackboneBase`): patch embedding,
stochastic depth, output norms, freezing, input checks, loading. What differs is in
the stage's parts: the block order (res-post-norm, :class:`SwinBlockV2`), the attention
(scaled cosine, :class:`WindowMSAV2`), the position bias (continuous, from an MLP, so
any window works with any weights) and the merging (reduce, then normalise,
:class:`PatchMergingV2`). The window layouts, padding and masks are V1's
(:mod:`mmswin.models.layers.window_layout`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Sequence, Union

import torch
import torch.utils.checkpoint as activation_checkpoint
from torch import Tensor, nn

from mmswin.kernels import check_attn_impl, is_transforming
from mmswin.models.layers.attention import PositionBiasInputs, WindowMSAV2
from mmswin.models.layers.patch import PatchMergingV2
from mmswin.models.layers.swin_block import SwinBlockV2
from mmswin.models.layers.window_layout import WindowLayoutCache
from mmswin.registry import MODELS

from .swin import SwinBackboneBase, _pretrained_init_cfg, resolve_arch

# The released V2 weights (microsoft/Swin-Transformer, configs/swinv2), for reference:
#   swinv2_{tiny,small,base}_patch4_window{8,16}_256      window 8 or 16,  pretrained_window_sizes 0
#   swinv2_{base,large}_patch4_window12_192_22k           window 12,       pretrained_window_sizes 0
#   swinv2_{base,large}_patch4_window12to16_192to256_22kto1k_ft   window 16, [12, 12, 12, 6]
#   swinv2_{base,large}_patch4_window12to24_192to384_22kto1k_ft   window 24, [12, 12, 12, 6]
# (At 256 / 192 / 384 pixels the last stage's 8 / 6 / 12 map is at most the window, so
# that stage runs with the map's side as its window; see SwinStageV2.window_for.)


class SwinStageV2(nn.Module):
    """``depth`` Swin V2 blocks alternating W-MSA / SW-MSA, then optional V2 patch merging.

    The window is decided per input (:meth:`window_for`): where the map's smaller side is
    at most ``window_size`` the stage attends in windows of that side, unshifted;
    elsewhere in windows of ``window_size``, shifted by half in every other block, on the
    map zero-padded to a multiple of the window before the cyclic shift. The position
    bias is normalised by ``pretrained_window_size - 1`` when it is > 0, else by the
    window's own ``M - 1``.

    ``forward`` takes a ``[B, H, W, C]`` grid and returns the stage output (same shape,
    before merging) and the input of the next stage (merged, or ``None``).
    """

    def __init__(
        self,
        embed_dims: int,
        depth: int,
        num_heads: int,
        drop_path_rates: Sequence[float],
        downsample: bool,
        window_size: int,
        pretrained_window_size: int = 0,
        mask_padding: bool = False,
        with_cp: bool = False,
        **block_kwargs,
    ):
        super().__init__()
        self.window_size = window_size
        self.pretrained_window_size = pretrained_window_size
        self.mask_padding = mask_padding
        self.with_cp = with_cp
        self.layouts = WindowLayoutCache()
        self.bias_inputs: OrderedDict[tuple, PositionBiasInputs] = OrderedDict()  # per (window, device), bounded
        self.blocks = nn.ModuleList(
            [
                SwinBlockV2(
                    embed_dims, num_heads, shifted=(i % 2 == 1), drop_path_rate=drop_path_rates[i], **block_kwargs
                )
                for i in range(depth)
            ]
        )
        self.downsample = PatchMergingV2(embed_dims) if downsample else None

    def window_for(self, height: int, width: int) -> tuple[int, int]:
        """``(window, shift)`` of this stage for a ``height x width`` map."""
        side = min(height, width)
        if side <= self.window_size:
            return side, 0
        return self.window_size, self.window_size // 2

    def position_bias_inputs(self, window_size: int, device: torch.device, transforming: bool) -> PositionBiasInputs:
        """The blocks' bias inputs for ``window_size``: cached per (window, device) in eager
        code, built in the graph while traced, compiled or exported."""
        if transforming:
            return PositionBiasInputs.build(window_size, self.pretrained_window_size, device)
        key = (window_size, device)
        inputs = self.bias_inputs.get(key)
        if inputs is None:
            inputs = PositionBiasInputs.build(window_size, self.pretrained_window_size, device)
            self.bias_inputs[key] = inputs
            if len(self.bias_inputs) > 16:
                self.bias_inputs.popitem(last=False)
        return inputs

    def forward(self, x: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        _, height, width, _ = x.shape
        window, shift = self.window_for(height, width)
        layout = self.layouts.layout_for(x, window, shift, self.mask_padding)
        bias_inputs = self.position_bias_inputs(window, x.device, is_transforming(x))
        tokens = layout.to_windows(x)
        for block in self.blocks:
            if self.with_cp and torch.is_grad_enabled():
                # Non-reentrant: works with frozen parameters and with DDP.
                tokens = activation_checkpoint.checkpoint(block, tokens, layout, bias_inputs, use_reentrant=False)
            else:
                tokens = block(tokens, layout, bias_inputs)
        out = layout.to_grid(tokens)
        return out, (self.downsample(out) if self.downsample is not None else None)


@MODELS.register_module()
class SwinV2Backbone(SwinBackboneBase):
    """Swin Transformer V2 backbone emitting multi-scale NCHW feature maps.

    Args:
        arch: ``'tiny' | 'small' | 'base' | 'large'`` (or ``t/s/b/l``; V1's widths, depths
            and heads), or a dict with ``embed_dims``, ``depths`` and ``num_heads``.
            Default ``'tiny'``.
        window_size: window side ``M``, an int or one per stage; the shift is ``M // 2``.
            A stage whose map's smaller side is at most ``M`` uses that side, unshifted
            (decided per input). Default 8.
        pretrained_window_sizes: the window each stage's weights were pretrained with, one
            per stage (or one int for all); the position bias normalises offsets by it.
            ``0`` means the stage's own window. Default 0.
        pretrain_img_size: image size the absolute position embedding is defined for.
            Default 256.
        in_channels: image channels. Default 3.
        patch_size: patch side of the embedding. Default 4.
        mlp_ratio: MLP hidden width over embed width. Default 4.
        patch_norm: LayerNorm after the patch embedding. Default True.
        drop_rate: dropout after the position embedding, in the MLP and the projection. Default 0.
        attn_drop_rate: dropout on attention weights. Default 0.
        drop_path_rate: stochastic depth at the last block, linear from 0 over all blocks. Default 0.1.
        use_abs_pos_embed: add a learnable absolute position embedding. Default False.
        out_indices: stages whose output is returned, each through its own LayerNorm.
            Default ``(0, 1, 2, 3)``.
        frozen_stages: freeze the patch embedding (>= 0) and stages ``0..k-1`` with their
            output norms; frozen parts stay in eval mode. ``-1`` freezes nothing. Default -1.
        with_cp: non-reentrant activation checkpointing per block. Default False.
        mask_padding: mask zero-padded tokens out as keys. Default False.
        attn_impl: ``'sdpa'``, ``'eager'`` or ``'auto'``
            (:func:`mmswin.kernels.choose_attention_impl`). Default ``'auto'``.
        init_cfg: MMEngine init config, e.g. ``dict(type='Pretrained', checkpoint=PATH)``;
            every public V2 weight format loads (:mod:`mmswin.checkpoint`).
        pretrained: ``pretrained=PATH`` as MMDetection / MMSegmentation spell
            ``init_cfg=dict(type='Pretrained', checkpoint=PATH)``; a path or None. Default None.
    """

    swin_version = 2

    def __init__(
        self,
        arch: Union[str, dict] = 'tiny',
        window_size: Union[int, Sequence[int]] = 8,
        pretrained_window_sizes: Union[int, Sequence[int]] = 0,
        pretrain_img_size: Union[int, Sequence[int]] = 256,
        in_channels: int = 3,
        patch_size: int = 4,
        mlp_ratio: float = 4.0,
        patch_norm: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        use_abs_pos_embed: bool = False,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        frozen_stages: int = -1,
        with_cp: bool = False,
        mask_padding: bool = False,
        attn_impl: str = 'auto',
        init_cfg: Optional[Union[dict, list]] = None,
        pretrained: Optional[str] = None,
    ):
        init_cfg = _pretrained_init_cfg(pretrained, init_cfg)
        num_stages = len(resolve_arch(arch)[1])
        windows = _per_stage('window_size', window_size, num_stages, minimum=1)
        pretrained = _per_stage('pretrained_window_sizes', pretrained_window_sizes, num_stages, minimum=0)
        check_attn_impl(attn_impl)
        super().__init__(
            arch,
            pretrain_img_size,
            in_channels,
            patch_size,
            mlp_ratio,
            patch_norm,
            drop_rate,
            attn_drop_rate,
            drop_path_rate,
            use_abs_pos_embed,
            out_indices,
            frozen_stages,
            init_cfg,
        )
        self.window_size = windows
        self.pretrained_window_sizes = pretrained
        self.build_stages(
            SwinStageV2,
            window_size=list(windows),
            pretrained_window_size=list(pretrained),
            mask_padding=mask_padding,
            with_cp=with_cp,
            mlp_ratio=mlp_ratio,
            drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate,
            attn_impl=attn_impl,
        )

    def _init_parameters(self) -> None:
        super()._init_parameters()
        for module in self.modules():
            if isinstance(module, (SwinBlockV2, WindowMSAV2)):
                module.reset_parameters()

    def load_report_details(self) -> list[str]:
        """What the load report adds for V2: the windows and the pretrained windows the
        continuous position bias uses (no table is resized)."""
        return [
            f'continuous position bias (nothing to resize): window_size={self.window_size}, '
            f'pretrained_window_sizes={self.pretrained_window_sizes}'
        ]


def _per_stage(name: str, value: Union[int, Sequence[int]], num_stages: int, minimum: int) -> tuple[int, ...]:
    """``value`` as one int per stage, or a ValueError naming ``name`` and the fix."""
    values = (value,) * num_stages if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(values, (list, tuple)) or len(values) != num_stages:
        raise ValueError(
            f'{name} must be an int >= {minimum} or a list of {num_stages} such ints (one per stage), got {value!r}'
        )
    for index, entry in enumerate(values):
        if not isinstance(entry, int) or isinstance(entry, bool) or entry < minimum:
            raise ValueError(f'{name}[{index}] must be an int >= {minimum}, got {entry!r} in {tuple(values)}')
    return tuple(values)
