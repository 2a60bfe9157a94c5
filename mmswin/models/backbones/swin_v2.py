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
from torch import Tensor

from mmswin.kernels import is_transforming
from mmswin.models.layers.attention import PositionBiasInputs, WindowMSAV2
from mmswin.models.layers.patch import PatchMergingV2
from mmswin.models.layers.swin_block import SwinBlockV2
from mmswin.registry import MODELS

from .swin import SwinBackboneBase, SwinStageBase, resolve_arch, with_common_arguments_doc

# The released V2 weights (microsoft/Swin-Transformer, configs/swinv2), for reference:
#   swinv2_{tiny,small,base}_patch4_window{8,16}_256      window 8 or 16,  pretrained_window_sizes 0
#   swinv2_{base,large}_patch4_window12_192_22k           window 12,       pretrained_window_sizes 0
#   swinv2_{base,large}_patch4_window12to16_192to256_22kto1k_ft   window 16, [12, 12, 12, 6]
#   swinv2_{base,large}_patch4_window12to24_192to384_22kto1k_ft   window 24, [12, 12, 12, 6]
# (At 256 / 192 / 384 pixels the last stage's 8 / 6 / 12 map is at most the window, so
# that stage runs with the map's side as its window; see SwinStageV2.window_for.)


class SwinStageV2(SwinStageBase):
    """``depth`` Swin V2 blocks alternating W-MSA / SW-MSA, then optional V2 patch merging
    (:class:`~.swin.SwinStageBase`).

    The window is decided per input (:meth:`window_for`): where the map's smaller side is
    at most ``window_size`` the stage attends in windows of that side, unshifted;
    elsewhere in windows of ``window_size``, shifted by half in every other block, on the
    map zero-padded to a multiple of the window before the cyclic shift. The position
    bias is normalised by ``pretrained_window_size - 1`` when it is > 0, else by the
    window's own ``M - 1``. The other arguments (``args``, ``options``) are
    :class:`~.swin.SwinStageBase`'s.
    """

    block_class = SwinBlockV2
    merging_class = PatchMergingV2

    def __init__(self, *args, window_size: int, pretrained_window_size: int = 0, **options):
        super().__init__(*args, **options)
        self.window_size = window_size
        self.pretrained_window_size = pretrained_window_size
        self.bias_inputs: OrderedDict[tuple, PositionBiasInputs] = OrderedDict()  # per (window, device), bounded

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

    def forward(self, x: Tensor, merged_size: Optional[tuple] = None) -> tuple[Tensor, Optional[Tensor]]:
        _, height, width, _ = x.shape
        window, shift = self.window_for(height, width)
        layout = self.layouts.layout_for(x, window, shift, self.mask_padding)
        bias_inputs = self.position_bias_inputs(window, x.device, is_transforming(x))
        return self.run_blocks(x, layout, bias_inputs, merged_size=merged_size)


@MODELS.register_module()
@with_common_arguments_doc
class SwinV2Backbone(SwinBackboneBase):
    """Swin Transformer V2 backbone emitting multi-scale NCHW feature maps.

    ``arch``, ``window_size``, ``pretrained_window_sizes`` and ``pretrain_img_size`` may be
    given by position, the others by keyword only. The arguments both versions take,
    ``in_channels`` to ``pretrained``, are documented once, in
    :data:`~.swin.COMMON_ARGUMENTS_DOC`; ``help()`` lists them at the end of ``Args``.

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
        pretrain_img_size: image size the absolute position embedding is defined for;
            it is resized (bicubic) to the input's patch grid. Default 256.
    """

    swin_version = 2

    def __init__(
        self,
        arch: Union[str, dict] = 'tiny',
        window_size: Union[int, Sequence[int]] = 8,
        pretrained_window_sizes: Union[int, Sequence[int]] = 0,
        pretrain_img_size: Union[int, Sequence[int]] = 256,
        **options,
    ):
        num_stages = len(resolve_arch(arch)[1])
        windows = _per_stage('window_size', window_size, num_stages, minimum=1)
        pretrained_windows = _per_stage('pretrained_window_sizes', pretrained_window_sizes, num_stages, minimum=0)
        super().__init__(arch, pretrain_img_size=pretrain_img_size, **options)
        self.window_size = windows
        self.pretrained_window_sizes = pretrained_windows
        self.build_stages(SwinStageV2, window_size=list(windows), pretrained_window_size=list(pretrained_windows))

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
