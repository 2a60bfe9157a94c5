"""Swin Transformer backbone for dense prediction (Liu et al., ICCV 2021).

Data flow: image -> PatchEmbed -> per stage (SwinBlock x depth -> output norm ->
PatchMerging) -> tuple of NCHW maps, one per entry of ``out_indices``.
"""

from __future__ import annotations

import inspect
import textwrap
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as activation_checkpoint
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmswin.checkpoint import register_checkpoint_hooks
from mmswin.kernels import check_attn_impl, check_block_impl, is_transforming, to_channels_first
from mmswin.models.layers.attention import WindowMSA
from mmswin.models.layers.patch import PatchEmbed, PatchMerging
from mmswin.models.layers.swin_block import SwinBlock
from mmswin.models.layers.window_layout import WindowLayout, WindowLayoutCache
from mmswin.registry import MODELS

ARCH_ZOO = {
    'tiny': dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    'small': dict(embed_dims=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
    'base': dict(embed_dims=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
    'large': dict(embed_dims=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48)),
}
ARCH_ALIASES = {'t': 'tiny', 's': 'small', 'b': 'base', 'l': 'large'}


class SwinStageBase(nn.Module):
    """What the V1 and V2 stages share: ``depth`` blocks of ``block_class`` alternating
    regular and shifted windows (W-MSA / SW-MSA), on the one layout per input size that
    the stage's :class:`WindowLayoutCache` keeps, each block checkpointed where
    ``with_cp``, then the optional patch merging (``merging_class``).

    A subclass names its block and merging classes and its own arguments (the window),
    passes the rest on, and its ``forward`` picks the layout and calls :meth:`run_blocks`.
    ``forward`` takes a ``[B, H, W, C]`` grid and returns the stage output (same shape,
    before merging) and the input of the next stage (merged, or ``None``).

    Args:
        embed_dims, depth, num_heads: the stage's width, blocks and heads.
        drop_path_rates: stochastic depth of each block, ``depth`` of them.
        downsample: merge patches after the blocks.
        mask_padding: mask zero-padded tokens out as keys (:class:`WindowLayoutCache`).
        with_cp: non-reentrant activation checkpointing per block while gradients are on.
        block_kwargs: the rest of ``block_class``'s arguments.
    """

    block_class: Callable[..., nn.Module]
    merging_class: Callable[[int], nn.Module]

    def __init__(
        self,
        embed_dims: int,
        depth: int,
        num_heads: int,
        drop_path_rates: Sequence[float],
        downsample: bool,
        *,
        mask_padding: bool = False,
        with_cp: bool = False,
        **block_kwargs,
    ):
        super().__init__()
        self.mask_padding = mask_padding
        self.with_cp = with_cp
        self.layouts = WindowLayoutCache()
        self.blocks = nn.ModuleList(
            [
                self.block_class(
                    embed_dims, num_heads, shifted=(i % 2 == 1), drop_path_rate=drop_path_rates[i], **block_kwargs
                )
                for i in range(depth)
            ]
        )
        self.downsample = self.merging_class(embed_dims) if downsample else None

    def run_blocks(
        self, x: Tensor, layout: WindowLayout, *inputs, merged_size: Optional[tuple] = None, **eager_options
    ) -> tuple[Tensor, Optional[Tensor]]:
        """The blocks on the grid ``x`` in ``layout``'s windows, then the merging: what
        ``forward`` returns. Each block is called as ``block(tokens, layout, *inputs)``,
        with ``eager_options`` too where it is not checkpointed. ``merged_size``: the
        merged grid's ``(height, width)`` where the caller knows it (traced code,
        :meth:`SwinBackboneBase.merged_sizes`), else None."""
        tokens = layout.to_windows(x)
        for block in self.blocks:
            if self.with_cp and torch.is_grad_enabled():
                # Non-reentrant: works with frozen parameters and with DDP.
                tokens = activation_checkpoint.checkpoint(block, tokens, layout, *inputs, use_reentrant=False)
            else:
                tokens = block(tokens, layout, *inputs, **eager_options)
        out = layout.to_grid(tokens)
        return out, (self.downsample(out, merged_size) if self.downsample is not None else None)


class SwinStage(SwinStageBase):
    """``depth`` V1 blocks in windows of ``window_size``, shifted by half in every other
    block, then optional patch merging (:class:`SwinStageBase`)."""

    block_class = SwinBlock
    merging_class = PatchMerging

    def __init__(
        self,
        embed_dims: int,
        depth: int,
        num_heads: int,
        window_size: int,
        drop_path_rates: Sequence[float],
        downsample: bool,
        **options,
    ):
        super().__init__(embed_dims, depth, num_heads, drop_path_rates, downsample, window_size=window_size, **options)
        self.window_size = window_size
        self.shift_size = window_size // 2

    def forward(self, x: Tensor, merged_size: Optional[tuple] = None) -> tuple[Tensor, Optional[Tensor]]:
        layout = self.layouts.layout_for(x, self.window_size, self.shift_size, self.mask_padding)
        # The windows are a new tensor, and so is every block's output: the stage's to
        # overwrite (owns_input). The workspace is scratch a CPU kernel keeps for the
        # stage's blocks, freed with it.
        return self.run_blocks(x, layout, merged_size=merged_size, workspace={}, owns_input=True)


# The arguments of SwinBackboneBase.__init__, which both versions take: documented once,
# here, and appended to each backbone's ``Args`` by with_common_arguments_doc.
COMMON_ARGUMENTS_DOC = """
in_channels: image channels. Default 3.
patch_size: patch side of the embedding; stage 0 has stride ``patch_size``. Default 4.
mlp_ratio: MLP hidden width over embed width. Default 4.
patch_norm: LayerNorm after the patch embedding. Default True.
drop_rate: dropout after the position embedding, in the MLP and the projection. Default 0.
attn_drop_rate: dropout on attention weights. Default 0.
drop_path_rate: stochastic depth at the last block, linear from 0 over all blocks. Default 0.1.
use_abs_pos_embed: add a learnable absolute position embedding, defined for
    ``pretrain_img_size``. Default False.
out_indices: stages whose output is returned, each through its own LayerNorm.
    Default ``(0, 1, 2, 3)``.
frozen_stages: freeze the patch embedding (>= 0) and stages ``0..k-1`` with their
    output norms; frozen parts stay in eval mode. ``-1`` freezes nothing. Default -1.
with_cp: non-reentrant activation checkpointing per block (saves memory). Default False.
mask_padding: mask zero-padded tokens out as keys so real tokens never attend to
    padding. Off by default for parity with the official numerics. Default False.
attn_impl: how the whole-tensor block (every V2 block is one) computes attention:
    ``'sdpa'`` (``scaled_dot_product_attention``), ``'eager'`` (explicit softmax) or
    ``'auto'`` (SDPA, except for CPU training: :func:`mmswin.kernels.choose_attention_impl`).
    Default ``'auto'``.
init_cfg: MMEngine init config, e.g. ``dict(type='Pretrained', checkpoint=PATH)``; every
    public weight format of the backbone's version loads (:mod:`mmswin.checkpoint`).
    Default None.
pretrained: MMDetection's / MMSegmentation's spelling of
    ``init_cfg=dict(type='Pretrained', checkpoint=pretrained)``; a path or None. Default None.
"""


def with_common_arguments_doc(cls: type) -> type:
    """Class decorator: ``cls``'s docstring, which ends with its own ``Args``, followed by
    :data:`COMMON_ARGUMENTS_DOC`, so that ``help(cls)`` lists every argument."""
    if cls.__doc__:  # None under python -OO
        common = textwrap.indent(inspect.cleandoc(COMMON_ARGUMENTS_DOC), '    ')
        cls.__doc__ = f'{inspect.cleandoc(cls.__doc__)}\n{common}\n'
    return cls


class SwinBackboneBase(BaseModule):
    """What the V1 and V2 backbones share: the common arguments and their checks, the
    patch embedding and the optional absolute position embedding, the stochastic-depth
    schedule, which stages are built, the output norms, freezing, the input checks, the
    forward pass and the one loading hook (:mod:`mmswin.checkpoint`).

    The base owns every argument the two versions have in common, keyword-only and with
    its default (documented in :data:`COMMON_ARGUMENTS_DOC`). A subclass names only its
    own arguments, checks them, passes the rest on (``super().__init__(arch, **options)``)
    and ends its ``__init__`` with :meth:`build_stages`, giving the stage class and its
    own stage options; the stage is where V1 and V2 differ (block, attention, position
    bias, merging). :meth:`argument_names` lists what the subclass takes in all.
    ``swin_version`` tells the loading hook which checkpoints fit.
    """

    swin_version = 1

    def __init__(
        self,
        arch: Union[str, dict],
        *,
        pretrain_img_size: Union[int, Sequence[int]] = 224,
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
        check_attn_impl(attn_impl)
        super().__init__(init_cfg=init_cfg)
        embed_dims, depths, num_heads = resolve_arch(arch)
        _check_int('patch_size', patch_size, minimum=1)
        pretrain_img_size = _check_image_size('pretrain_img_size', pretrain_img_size, patch_size)
        _check_int('in_channels', in_channels, minimum=1)
        if not mlp_ratio > 0:
            raise ValueError(f'mlp_ratio must be > 0, got {mlp_ratio}')
        for name, rate in (
            ('drop_rate', drop_rate),
            ('attn_drop_rate', attn_drop_rate),
            ('drop_path_rate', drop_path_rate),
        ):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f'{name} must be in [0, 1), got {rate}')
        num_stages = len(depths)
        self.out_indices = normalise_out_indices(out_indices, num_stages)
        if not isinstance(frozen_stages, int) or not -1 <= frozen_stages <= num_stages:
            raise ValueError(
                f'frozen_stages must be an int in [-1, {num_stages}] (number of stages), got {frozen_stages!r}'
            )

        self.arch_settings = dict(embed_dims=embed_dims, depths=depths, num_heads=num_heads)
        self.in_channels = in_channels
        self.patch_size = patch_size
        self.frozen_stages = frozen_stages
        self.num_stages = num_stages
        self.num_features = [embed_dims * 2**i for i in range(num_stages)]
        self.drop_path_rate = drop_path_rate
        # Every stage of either version takes these; build_stages adds them to the subclass's.
        self.common_stage_options = dict(
            mlp_ratio=mlp_ratio,
            drop_rate=drop_rate,
            attn_drop_rate=attn_drop_rate,
            with_cp=with_cp,
            mask_padding=mask_padding,
            attn_impl=attn_impl,
        )

        self.patch_embed = PatchEmbed(in_channels, embed_dims, patch_size, patch_norm)
        self.use_abs_pos_embed = use_abs_pos_embed
        if use_abs_pos_embed:
            grid = (pretrain_img_size[0] // patch_size, pretrain_img_size[1] // patch_size)
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, embed_dims, *grid))
        self.drop_after_pos = nn.Dropout(drop_rate)

    @classmethod
    def argument_names(cls) -> set[str]:
        """The names of every argument the class takes: its own ``__init__``'s and those it
        passes on (``**options``) to the ``__init__`` of each base up to this one."""
        names: set[str] = set()
        for klass in cls.__mro__:
            if not issubclass(klass, SwinBackboneBase) or '__init__' not in vars(klass):
                continue
            for name, parameter in inspect.signature(klass.__init__).parameters.items():
                if name != 'self' and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                    names.add(name)
        return names

    def build_stages(self, stage_class: Callable[..., nn.Module], **stage_options) -> None:
        """Build the stages, the output norms, initialise, freeze and hook the loader.

        Stage ``i`` is ``stage_class(embed_dims, depth, num_heads, drop_path_rates,
        downsample, **options_i)``. The options are :attr:`common_stage_options` (every
        stage takes them) and the subclass's own ``stage_options``; an option given as a
        list or tuple of one value per stage (e.g. ``window_size``) contributes its
        ``i``-th entry and any other option is passed to every stage as it is.
        """
        stage_options = {**self.common_stage_options, **stage_options}
        depths, num_heads = self.arch_settings['depths'], self.arch_settings['num_heads']
        rates = torch.linspace(0, self.drop_path_rate, sum(depths), device='cpu').tolist()  # on a meta build too
        # Stages after the last returned one would have parameters that never get a
        # gradient (DDP error), so they are not built.
        num_built = max(self.out_indices) + 1
        self.stages = nn.ModuleList()
        for i, depth in enumerate(depths[:num_built]):
            start = sum(depths[:i])
            options = {
                name: value[i] if isinstance(value, (list, tuple)) else value for name, value in stage_options.items()
            }
            self.stages.append(
                stage_class(
                    self.num_features[i],
                    depth,
                    num_heads[i],
                    drop_path_rates=rates[start : start + depth],
                    downsample=i < num_built - 1,
                    **options,
                )
            )
        # Norms only for returned stages: an unused parameter would break DDP.
        for i in self.out_indices:
            self.add_module(f'norm{i}', nn.LayerNorm(self.num_features[i]))

        self._init_parameters()
        self._freeze_stages()
        # Every load path (load_state_dict, Pretrained init_cfg, load_from, resume) converts
        # any public Swin format, resizes position tables and checks the arch here.
        register_checkpoint_hooks(self)

    def _init_parameters(self) -> None:
        """Random init (truncated normal, std 0.02) used when no checkpoint is loaded."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if self.use_abs_pos_embed:
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)

    def frozen_modules(self) -> list[nn.Module]:
        """Modules that ``frozen_stages`` freezes, in forward order."""
        if self.frozen_stages < 0:
            return []
        modules: list[nn.Module] = [self.patch_embed, self.drop_after_pos]
        for i in range(min(self.frozen_stages, len(self.stages))):
            modules.append(self.stages[i])
            if i in self.out_indices:
                modules.append(getattr(self, f'norm{i}'))
        return modules

    def _freeze_stages(self) -> None:
        # Frozen at construction, not in train(): DDP records which parameters need
        # gradients when it wraps the model, which happens before the first train().
        if self.frozen_stages >= 0 and self.use_abs_pos_embed:
            self.absolute_pos_embed.requires_grad_(False)
        for module in self.frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad_(False)

    def train(self, mode: bool = True) -> 'SwinBackboneBase':
        """Set train/eval mode; frozen stages always stay in eval mode."""
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self

    def _check_input(self, x: Tensor) -> None:
        name = type(self).__name__
        if not isinstance(x, Tensor):
            raise TypeError(f'{name} expects a torch.Tensor of shape [B, C, H, W], got {type(x).__name__}')
        if x.dim() != 4:
            raise ValueError(f'{name} expects a 4-D input [B, C, H, W], got shape {tuple(x.shape)}')
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f'{name} was built with in_channels={self.in_channels} but the input has '
                f'{x.shape[1]} channels (shape {tuple(x.shape)}); set in_channels to match'
            )
        if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
            raise ValueError(
                f'{name} got an empty input of shape {tuple(x.shape)}; batch, height and width must be at least 1'
            )
        if not x.is_floating_point():
            raise TypeError(
                f'{name} expects a floating-point input, got dtype {x.dtype}; '
                'convert it with x.float() (and normalise it) first'
            )

    def merged_sizes(self, images: Tensor) -> list[Optional[tuple]]:
        """Per stage, the grid size after its patch merging, ``ceil(image / (patch_size *
        2 ** (stage + 1)))`` for ``[B, C, H, W]`` ``images`` (the same as halving the
        stage's own size, rounding up), while the model is traced, compiled or exported;
        None in eager code, where the stages compute it. Symbolic sizes then stay one
        ceiling division of the input's (see :func:`~mmswin.models.layers.patch.concat_2x2`)."""
        if not is_transforming(images):
            return [None] * len(self.stages)
        strides = [self.patch_size * 2 ** (i + 1) for i in range(len(self.stages))]
        return [tuple((side + stride - 1) // stride for side in images.shape[2:]) for stride in strides]

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """``[B, C, H, W]`` -> tuple of ``[B, C_i, H_i, W_i]``, ``H_0 = ceil(H / patch_size)``,
        each later stage ``ceil(previous / 2)``."""
        self._check_input(x)
        merged_sizes = self.merged_sizes(x)
        x = self.patch_embed(x)  # [B, H0, W0, C]
        if self.use_abs_pos_embed:
            pos = self.absolute_pos_embed
            if pos.shape[2:] != x.shape[1:3]:
                pos = F.interpolate(pos, size=x.shape[1:3], mode='bicubic', align_corners=False)
            x = x + pos.permute(0, 2, 3, 1)
        x = self.drop_after_pos(x)

        outs = []
        for i, stage in enumerate(self.stages):
            out, x = stage(x, merged_sizes[i])
            if i in self.out_indices:
                outs.append(to_channels_first(getattr(self, f'norm{i}')(out)))
        return tuple(outs)


@MODELS.register_module()
@with_common_arguments_doc
class SwinBackbone(SwinBackboneBase):
    """Swin Transformer backbone emitting multi-scale NCHW feature maps.

    ``arch`` and ``pretrain_img_size`` may be given by position, the others by keyword only.
    The arguments both versions take, ``in_channels`` to ``pretrained``, are documented
    once, in :data:`COMMON_ARGUMENTS_DOC`; ``help()`` lists them at the end of ``Args``.

    Args:
        arch: ``'tiny' | 'small' | 'base' | 'large'`` (or ``t/s/b/l``), or a dict with
            ``embed_dims``, ``depths`` and ``num_heads``. Default ``'tiny'``.
        pretrain_img_size: image size the absolute position embedding is defined for;
            it is resized (bicubic) to the input's patch grid. An int or ``(height, width)``;
            a 1-tuple is a square size. Default 224.
        window_size: window side ``M``; the shift is ``M // 2``. Default 7.
        qkv_bias: learnable bias on q, k, v. Default True.
        qk_scale: attention scale; ``None`` means ``head_dim ** -0.5``. Default None.
        block_impl: how the blocks run (:func:`mmswin.kernels.choose_block_impl`):
            ``'auto'`` (the CPU fp32 kernels where they serve, else the whole-tensor
            block), ``'reference'`` (always the whole-tensor block) or ``'cpu_chunked'``
            (the CPU kernels, an error where they cannot serve). Default ``'auto'``.
    """

    def __init__(
        self,
        arch: Union[str, dict] = 'tiny',
        pretrain_img_size: Union[int, Sequence[int]] = 224,
        *,
        window_size: int = 7,
        qkv_bias: bool = True,
        qk_scale: Optional[float] = None,
        block_impl: str = 'auto',
        **options,
    ):
        _check_int('window_size', window_size, minimum=1)
        check_block_impl(block_impl)
        super().__init__(arch, pretrain_img_size=pretrain_img_size, **options)
        self.window_size = window_size
        self.build_stages(
            SwinStage, window_size=window_size, qkv_bias=qkv_bias, qk_scale=qk_scale, block_impl=block_impl
        )

    def _init_parameters(self) -> None:
        super()._init_parameters()
        for module in self.modules():
            if isinstance(module, WindowMSA):
                nn.init.trunc_normal_(module.relative_position_bias_table, std=0.02)


def _check_int(name: str, value, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f'{name} must be an int >= {minimum}, got {value!r}')


def _pretrained_init_cfg(pretrained, init_cfg):
    """MMDetection's / MMSegmentation's ``pretrained=PATH`` as ``init_cfg``."""
    if pretrained is None:
        return init_cfg
    if not isinstance(pretrained, str):
        raise TypeError(
            f'pretrained must be a checkpoint path (str) or None, got {type(pretrained).__name__} {pretrained!r}; '
            "or set init_cfg=dict(type='Pretrained', checkpoint=PATH)"
        )
    if init_cfg is not None:
        raise ValueError(
            f'pretrained={pretrained!r} and init_cfg={init_cfg!r} both name the initial weights; '
            "keep one (init_cfg=dict(type='Pretrained', checkpoint=PATH))"
        )
    return dict(type='Pretrained', checkpoint=pretrained)


def _check_image_size(name: str, value, patch_size: int) -> tuple[int, int]:
    """``224``, ``(224,)`` or ``(224, 224)`` -> ``(224, 224)``; anything else is a ValueError
    naming ``name``. Each side must hold at least one patch."""
    sides = (value,) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(sides, (list, tuple)) or len(sides) not in (1, 2):
        raise ValueError(
            f'{name} must be an int or a (height, width) pair, e.g. 224 or (384, 384), got {value!r}; '
            'a 1-tuple means a square size'
        )
    for side in sides:
        if not isinstance(side, int) or isinstance(side, bool) or side < patch_size:
            raise ValueError(
                f'{name} is the image size the weights were pretrained at, e.g. 224 or 384: each side an int '
                f'>= patch_size ({patch_size}); got {value!r}'
            )
    return (sides[0], sides[-1])


def resolve_arch(arch: Union[str, dict]) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    if isinstance(arch, str):
        key = ARCH_ALIASES.get(arch.lower(), arch.lower())
        if key not in ARCH_ZOO:
            raise ValueError(
                f'Unknown arch {arch!r}; choose one of {sorted(ARCH_ZOO)} or pass a dict with '
                'embed_dims, depths and num_heads'
            )
        arch = ARCH_ZOO[key]
    elif not isinstance(arch, dict):
        raise TypeError(f'arch must be a str or a dict, got {type(arch).__name__}')
    missing = {'embed_dims', 'depths', 'num_heads'} - set(arch)
    if missing:
        raise ValueError(f'arch dict is missing {sorted(missing)}; it needs embed_dims, depths and num_heads')
    embed_dims, depths, num_heads = arch['embed_dims'], tuple(arch['depths']), tuple(arch['num_heads'])
    _check_int('arch.embed_dims', embed_dims, minimum=1)
    if len(depths) == 0 or len(depths) != len(num_heads):
        raise ValueError(
            f'arch.depths and arch.num_heads must be non-empty and of the same length, got '
            f'depths={depths} and num_heads={num_heads}'
        )
    for i, (depth, heads) in enumerate(zip(depths, num_heads)):
        _check_int(f'arch.depths[{i}]', depth, minimum=1)
        _check_int(f'arch.num_heads[{i}]', heads, minimum=1)
        width = embed_dims * 2**i
        if width % heads:
            raise ValueError(
                f'stage {i} has width {width} (embed_dims * 2**{i}), which is not divisible by num_heads[{i}]={heads}'
            )
    return embed_dims, depths, num_heads


def normalise_out_indices(out_indices: Sequence[int], num_stages: int) -> tuple[int, ...]:
    if isinstance(out_indices, int):
        out_indices = (out_indices,)
    if len(out_indices) == 0:
        raise ValueError('out_indices must name at least one stage')
    normalised = []
    for index in out_indices:
        if not isinstance(index, int) or not -num_stages <= index < num_stages:
            raise ValueError(
                f'out_indices entries must be ints in [{-num_stages}, {num_stages - 1}] for '
                f'{num_stages} stages, got {index!r} in {tuple(out_indices)}'
            )
        normalised.append(index % num_stages)
    if len(set(normalised)) != len(normalised):
        raise ValueError(f'out_indices has duplicates: {tuple(out_indices)}')
    return tuple(sorted(normalised))
