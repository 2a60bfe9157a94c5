"""Layer-wise learning-rate decay for Swin backbones (V1 and V2), as an optimiser-wrapper constructor.

Layer ids, for a backbone of ``N`` blocks in all (``num_layers = N + 1``):

- the patch embedding and the absolute position embedding: 0;
- block ``k`` in global order (stage by stage, ``stages[i].blocks[j]``): ``k + 1``;
- a patch merging (``stages[i].downsample``) goes with the next stage's first block;
- everything else (the backbone's output norms, neck, heads): ``num_layers``.

Each parameter's lr is ``base_lr * decay_rate ** (num_layers - layer_id)``, so the heads train
at ``base_lr`` and the patch embedding at ``base_lr * decay_rate ** num_layers``. Weight decay
is ``weight_decay``, except 0 for norm layers (LayerNorm, GroupNorm, BatchNorm, anywhere in
the model) and for parameters whose name contains one of ``no_decay_names``: by default the
position tables (``absolute_pos_embed``, ``relative_position_bias_table``) and Swin V2's
``logit_scale`` and ``cpb_mlp``. V2's ``q_bias`` / ``v_bias`` are biases of their block's
attention: they take the block's id and decay like V1's ``qkv.bias``. Frozen parameters
(``requires_grad=False``, e.g. ``frozen_stages``) are left out.

Config::

    optim_wrapper = dict(
        type='OptimWrapper',
        constructor='mmswin.SwinLayerDecayOptimWrapperConstructor',
        optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
        paramwise_cfg=dict(decay_rate=0.9),
    )
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPERS, OPTIMIZERS
from torch import nn

from mmswin.registry import OPTIM_WRAPPER_CONSTRUCTORS

DEFAULT_NO_DECAY_NAMES = ('absolute_pos_embed', 'relative_position_bias_table', 'logit_scale', 'cpb_mlp')
PARAMWISE_KEYS = ('decay_rate', 'no_decay_names')
NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase, nn.LocalResponseNorm)

_BLOCK = re.compile(r'^stages\.(\d+)\.blocks\.(\d+)\.')
_MERGING = re.compile(r'^stages\.(\d+)\.downsample\.')


def find_swin_backbone(model: nn.Module) -> tuple[str, nn.Module]:
    """``(prefix, backbone)``: ``model.backbone`` (prefix ``'backbone.'``) or ``model`` itself
    (prefix ``''``), whichever has Swin's ``patch_embed`` and ``stages[i].blocks``."""
    for prefix, module in (('backbone.', getattr(model, 'backbone', None)), ('', model)):
        if _is_swin(module):
            return prefix, module
    raise TypeError(
        f'mmswin.SwinLayerDecayOptimWrapperConstructor needs a Swin backbone (mmswin.SwinBackbone or '
        f'SwinV2Backbone) as model.backbone or as the model; got {type(model).__name__} with backbone '
        f'{type(getattr(model, "backbone", None)).__name__}; use the default constructor for other backbones'
    )


def _is_swin(module) -> bool:
    stages = getattr(module, 'stages', None)
    return (
        isinstance(module, nn.Module)
        and hasattr(module, 'patch_embed')
        and isinstance(stages, nn.ModuleList)
        and all(isinstance(getattr(stage, 'blocks', None), nn.ModuleList) for stage in stages)
    )


def swin_layer_id(name: str, depths: Sequence[int]) -> int:
    """The layer id of backbone parameter ``name`` (relative to the backbone), for stages of
    ``depths`` blocks: 0 for the patch and position embeddings, ``k + 1`` for block ``k`` in
    global order, the next stage's first block for a patch merging, ``sum(depths) + 1`` else."""
    if name.startswith(('patch_embed.', 'absolute_pos_embed')):
        return 0
    block = _BLOCK.match(name)
    if block:
        stage, index = int(block.group(1)), int(block.group(2))
        return sum(depths[:stage]) + index + 1
    merging = _MERGING.match(name)
    if merging:
        return sum(depths[: int(merging.group(1)) + 1]) + 1
    return sum(depths) + 1


def layer_decay_param_groups(
    model: nn.Module,
    base_lr: float,
    weight_decay: float,
    decay_rate: float,
    no_decay_names: Sequence[str] = DEFAULT_NO_DECAY_NAMES,
) -> list[dict]:
    """Parameter groups, one per (layer id, decays or not), in layer order.

    Each group has ``params``, ``lr``, ``weight_decay``, ``layer_id``, ``lr_scale``
    (``decay_rate ** (num_layers - layer_id)``) and ``param_names``.
    """
    prefix, backbone = find_swin_backbone(model)
    depths = [len(stage.blocks) for stage in backbone.stages]
    num_layers = sum(depths) + 1
    norm_params = {
        f'{module_name}.{param_name}' if module_name else param_name
        for module_name, module in model.named_modules()
        if isinstance(module, NORM_TYPES)
        for param_name, _ in module.named_parameters(recurse=False)
    }
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        in_backbone = name.startswith(prefix)
        layer_id = swin_layer_id(name[len(prefix) :], depths) if in_backbone else num_layers
        decays = name not in norm_params and not any(key in name for key in no_decay_names)
        group = groups.get((layer_id, decays))
        if group is None:
            scale = decay_rate ** (num_layers - layer_id)
            group = groups[(layer_id, decays)] = dict(
                params=[],
                param_names=[],
                lr=base_lr * scale,
                weight_decay=weight_decay if decays else 0.0,
                layer_id=layer_id,
                lr_scale=scale,
            )
        group['params'].append(param)
        group['param_names'].append(name)
    return [groups[key] for key in sorted(groups, key=lambda key: (key[0], not key[1]))]


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class SwinLayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Builds the optimiser wrapper with :func:`layer_decay_param_groups`.

    ``paramwise_cfg``: ``decay_rate`` (in (0, 1]; required) and ``no_decay_names`` (name
    substrings whose parameters get no weight decay; default :data:`DEFAULT_NO_DECAY_NAMES`).
    The optimiser's ``lr`` is the heads' lr; its ``weight_decay`` (default 0) the decaying
    groups' weight decay.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        paramwise_cfg = dict(paramwise_cfg or {})
        unknown = sorted(set(paramwise_cfg) - set(PARAMWISE_KEYS))
        if unknown:
            raise ValueError(
                f'optim_wrapper.paramwise_cfg: {unknown} not understood by the Swin layer-decay constructor, which '
                f'takes {list(PARAMWISE_KEYS)}; norms and position tables already get no weight decay'
            )
        decay_rate = paramwise_cfg.get('decay_rate')
        if isinstance(decay_rate, bool) or not isinstance(decay_rate, (int, float)) or not 0 < decay_rate <= 1:
            raise ValueError(
                f'optim_wrapper.paramwise_cfg.decay_rate must be a number in (0, 1], e.g. 0.9, got {decay_rate!r}'
            )
        names = paramwise_cfg.get('no_decay_names', DEFAULT_NO_DECAY_NAMES)
        if isinstance(names, str) or not all(isinstance(name, str) for name in names):
            raise TypeError(
                f'optim_wrapper.paramwise_cfg.no_decay_names must be a list of name substrings, got {names!r}'
            )
        optimizer = (optim_wrapper_cfg or {}).get('optimizer') or {}
        if not isinstance(optimizer.get('lr'), (int, float)):
            raise ValueError(f"optim_wrapper.optimizer needs an lr (the heads' lr), got {optimizer!r}")
        self.decay_rate = float(decay_rate)
        self.no_decay_names = tuple(names)
        # The parent validates and keeps optimizer / wrapper settings; the keys above are ours.
        super().__init__(optim_wrapper_cfg, paramwise_cfg=None)

    def __call__(self, model: nn.Module):
        model = getattr(model, 'module', model)  # a DDP-wrapped model
        optimizer_cfg = self.optimizer_cfg.copy()
        optimizer_cfg['params'] = layer_decay_param_groups(
            model,
            base_lr=optimizer_cfg['lr'],
            weight_decay=optimizer_cfg.get('weight_decay', 0.0),
            decay_rate=self.decay_rate,
            no_decay_names=self.no_decay_names,
        )
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        return OPTIM_WRAPPERS.build(self.optim_wrapper_cfg.copy(), default_args=dict(optimizer=optimizer))
