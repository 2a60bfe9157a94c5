"""Config mistakes caught before building anything, each with the field and the fix."""

from __future__ import annotations

import difflib
import inspect

from mmengine.config import Config

from .preflight import PreflightError

SWIN_TYPES = ('mmswin.SwinBackbone', 'SwinBackbone')


def _stage_widths(backbone: dict) -> list[int] | None:
    from mmswin.models.backbones.swin import _normalise_out_indices, _resolve_arch

    try:
        embed_dims, depths, _ = _resolve_arch(backbone.get('arch', 'tiny'))
        out_indices = _normalise_out_indices(backbone.get('out_indices', (0, 1, 2, 3)), len(depths))
    except (ValueError, TypeError) as error:
        raise PreflightError(f'model.backbone: {error}') from None
    return [embed_dims * 2**i for i in out_indices]


_ARCH_HINT = "give the sizes as arch=dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)) or arch='tiny'"

# Arguments of MMDetection's / MMSegmentation's SwinTransformer that SwinBackbone spells
# differently or does not need: a config moved over from there gets the translation.
PEER_ARGUMENTS = {
    'embed_dims': _ARCH_HINT,
    'depths': _ARCH_HINT,
    'num_heads': _ARCH_HINT,
    'pretrained': "load weights with init_cfg=dict(type='Pretrained', checkpoint=PATH) (any public format)",
    'convert_weights': 'drop it: every public weight format is recognised and converted on load',
    'strides': 'drop it: the strides follow from patch_size (4) and the patch merging between stages',
    'act_cfg': 'drop it: the MLP uses GELU, as in the paper',
    'norm_cfg': 'drop it: the blocks and the output norms use LayerNorm, as in the paper',
}


def check_backbone_arguments(backbone: dict) -> None:
    """Unknown SwinBackbone arguments: a peer's name gets its translation, a misspelt one
    the closest known name."""
    from mmswin.models import SwinBackbone

    known = set(inspect.signature(SwinBackbone.__init__).parameters) - {'self'}
    for name in backbone:
        if name in ('type', '_scope_') or name in known:
            continue
        if name in PEER_ARGUMENTS:
            raise PreflightError(
                f"model.backbone: '{name}' is an argument of MMDetection's / MMSegmentation's SwinTransformer, "
                f'not of SwinBackbone; {PEER_ARGUMENTS[name]}'
            )
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f'known arguments: {", ".join(sorted(known))}'
        raise PreflightError(f"model.backbone has an unknown SwinBackbone argument '{name}'; {hint}")


def check_model_config(cfg: Config) -> None:
    backbone = cfg.get('model', {}).get('backbone')
    if not isinstance(backbone, dict) or backbone.get('type') not in SWIN_TYPES:
        return
    if backbone['type'] == 'SwinBackbone':
        raise PreflightError(
            "model.backbone.type='SwinBackbone' is not registered in the "
            f"{cfg.default_scope} scope; write type='mmswin.SwinBackbone' and add "
            "custom_imports = dict(imports=['mmswin.models'], allow_failed_imports=False)"
        )
    check_backbone_arguments(backbone)
    widths = _stage_widths(backbone)
    model = cfg.model
    consumer = None
    if isinstance(model.get('neck'), dict) and 'in_channels' in model.neck:
        consumer = ('model.neck.in_channels', list(model.neck.in_channels))
    elif isinstance(model.get('decode_head'), dict) and isinstance(model.decode_head.get('in_channels'), (list, tuple)):
        consumer = ('model.decode_head.in_channels', list(model.decode_head.in_channels))
    if consumer and consumer[1] != widths:
        raise PreflightError(
            f'{consumer[0]}={consumer[1]} does not match the backbone outputs: '
            f'model.backbone.out_indices={tuple(backbone.get("out_indices", (0, 1, 2, 3)))} gives '
            f'channels {widths}; set {consumer[0]}={widths} or change out_indices'
        )
