"""Checkpoint layouts: find the tensors, detect the format and the Swin version (V1 or V2)
from the keys, convert to mmswin's.

Conversion needs no model: it renames keys, moves patch merging to the end of the
stage it reduces, and reorders the patch-merging weights of formats that concatenate
the 2x2 neighbourhood in another order. Fitting the result to one model (window and
grid resizing, unbuilt stages, shape checks) is :mod:`mmswin.checkpoint.loading`.

mmswin's layout (the target)::

    patch_embed.proj.{weight,bias}  patch_embed.norm.*  absolute_pos_embed [1, C, Ph, Pw]
    stages.{i}.blocks.{j}.{norm1, attn.qkv, attn.proj, attn.relative_position_bias_table, norm2, mlp.fc1, mlp.fc2}
    stages.{i}.downsample.{norm, reduction}    merging at the END of stage i, concat order
                                               x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]
    norm{i}.*                                  output norm of stage i

Swin V2 (SwinV2Backbone) has the same structure; its blocks hold
``attn.{qkv.weight, q_bias, v_bias, logit_scale, cpb_mlp.0.*, cpb_mlp.2.weight, proj}``
instead of V1's qkv bias and table, and ``downsample.norm`` normalises the reduced ``2C``
channels, so it needs no reordering in any format.
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from torch import Tensor

from mmswin.errors import CheckpointFormatError

from .resize import position_embedding_to_grid

FORMAT_NAMES = {
    'mmswin': 'mmswin',
    'official': 'official Swin',
    'openmmlab': 'OpenMMLab (MMDetection 3.x / MMSegmentation 1.x / MMPretrain)',
    'timm': 'timm',
    'torchvision': 'torchvision',
}

# Dicts that wrap the state dict, in the order they are looked for.
WRAPPER_KEYS = ('state_dict', 'model', 'module')
# Key prefixes of model wrappers: (Distributed)DataParallel, then torch.compile.
WRAPPER_PREFIXES = ('module.', '_orig_mod.')

# Keys with no place in a backbone: dropped silently, by design, and nothing else is.
HEAD = 'classification head'
BUFFER = 'recomputed buffers'
OUTSIDE = 'outside the backbone'

_MMSWIN_KEY = re.compile(r'stages\.\d+\.blocks\.\d+\.(attn\.(qkv|proj|relative_position_bias_table)|mlp\.fc[12])\b')
_OPENMMLAB_KEY = re.compile(r'stages\.\d+\.blocks\.\d+\.(attn\.w_msa|ffn\.layers)\.|patch_embed\.projection\.')
_LAYERS_KEY = re.compile(r'layers[._]\d+\.blocks\.\d+\.')
_TORCHVISION_KEY = re.compile(r'features\.\d+\.\d+\.attn\.')
_SWIN_V2_MARKERS = ('cpb_mlp', 'logit_scale', 'relative_coords_table', 'q_bias')
_SWIN_V1_MARKERS = ('relative_position_bias_table',)
# The name of a format where it differs for V2 (only MMPretrain has a Swin V2).
V2_FORMAT_NAMES = {'openmmlab': 'MMPretrain'}
# A Swin key anywhere in a name: used to suggest a ``prefix`` when nothing matched.
_SWIN_ANYWHERE = re.compile(
    r'(?:^|\.)(layers[._]\d+\.blocks\.|stages\.\d+\.blocks\.|patch_embed\.proj|'
    r'features\.\d+\.\d+\.attn\.)'
)


@dataclass
class ConvertedCheckpoint:
    """A checkpoint in mmswin's layout, with where each tensor came from."""

    state_dict: 'OrderedDict[str, Tensor]'
    format: str
    variant: str = ''
    version: int = 1  # Swin V1 or V2
    # mmswin key -> the key it had in the checkpoint (for error messages).
    source_keys: dict = field(default_factory=dict)
    # reason -> number of keys dropped by design.
    ignored: Counter = field(default_factory=Counter)

    @property
    def description(self) -> str:
        """E.g. ``'official Swin (classification)'``, ``'timm (V2)'``."""
        name = (
            V2_FORMAT_NAMES.get(self.format, FORMAT_NAMES[self.format])
            if self.version == 2
            else FORMAT_NAMES[self.format]
        )
        parts = (['V2'] if self.version == 2 else []) + ([self.variant] if self.variant else [])
        return f'{name} ({", ".join(parts)})' if parts else name


def extract_state_dict(checkpoint: Any, prefix: Optional[str] = None) -> tuple['OrderedDict[str, Tensor]', int]:
    """The tensors of a checkpoint, and how many tensors were left out as not the backbone's.

    Unwraps ``state_dict`` / ``model`` / ``module`` dicts, strips the key prefixes of
    (Distributed)DataParallel (``module.``) and torch.compile (``_orig_mod.``), then keeps
    the keys under ``prefix`` with the prefix removed. Without ``prefix``, a full detector
    or segmentor checkpoint is recognised by its ``backbone.`` keys and only those are kept.
    """
    tensors = OrderedDict((_strip_wrapper_prefixes(key), value) for key, value in _find_tensors(checkpoint).items())
    if prefix is None and any(key.startswith('backbone.') for key in tensors):
        prefix = 'backbone.'
    if not prefix:
        return tensors, 0
    selected = OrderedDict((key[len(prefix) :], value) for key, value in tensors.items() if key.startswith(prefix))
    if not selected:
        raise CheckpointFormatError(
            f'no key of the checkpoint starts with prefix {prefix!r}; its keys start with {_top_level_names(tensors)}'
        )
    return selected, len(tensors) - len(selected)


def _strip_wrapper_prefixes(key: str) -> str:
    for wrapper in WRAPPER_PREFIXES:
        if key.startswith(wrapper):
            key = key[len(wrapper) :]
    return key


def _find_tensors(checkpoint: Any) -> 'OrderedDict[str, Tensor]':
    node = checkpoint
    for _ in range(4):
        if not isinstance(node, Mapping):
            raise CheckpointFormatError(
                f'a checkpoint is a dict of tensors (possibly inside "state_dict" or "model"),'
                f' got {type(node).__name__}'
            )
        if any(isinstance(value, Tensor) for value in node.values()):
            break
        wrapped = next((node[key] for key in WRAPPER_KEYS if isinstance(node.get(key), Mapping)), None)
        if wrapped is None:
            break
        node = wrapped
    tensors = OrderedDict(
        (key, value) for key, value in node.items() if isinstance(key, str) and isinstance(value, Tensor)
    )
    if not tensors:
        raise CheckpointFormatError(f'the checkpoint holds no tensors; its top-level keys are {_sample(node)}')
    return tensors


def swin_version(keys: Iterable[str]) -> tuple[Optional[int], Optional[str]]:
    """``(1 or 2, the key that says so)`` from a V1 or V2 attention key, ``(None, None)``
    when no key tells (e.g. a state dict of the patch embedding alone)."""
    keys = list(keys)
    for version, markers in ((2, _SWIN_V2_MARKERS), (1, _SWIN_V1_MARKERS)):
        key = next((key for key in keys if any(marker in key for marker in markers)), None)
        if key is not None:
            return version, key
    return None, None


_BACKBONE_OF_VERSION = {1: 'SwinBackbone', 2: 'SwinV2Backbone'}


def check_swin_version(keys: Iterable[str], version: Optional[int]) -> Optional[int]:
    """The checkpoint's Swin version (:func:`swin_version`); a CheckpointFormatError
    saying which version it is when it is not ``version`` (None accepts either)."""
    found, key = swin_version(keys)
    if version is not None and found is not None and found != version:
        raise CheckpointFormatError(
            f'this is a Swin Transformer V{found} checkpoint ({key!r}), and {_BACKBONE_OF_VERSION[version]} '
            f'is Swin V{version}, whose attention and position bias differ; load it into '
            f"type='mmswin.{_BACKBONE_OF_VERSION[found]}', or use a V{version} checkpoint"
        )
    return found


def detect_format(keys: Iterable[str], shapes: Optional[Mapping[str, tuple]] = None, version: Optional[int] = 1) -> str:
    """Name the layout of a backbone state dict from its keys (see :data:`FORMAT_NAMES`).

    ``shapes`` (key -> shape) settles official vs timm when a truncated state dict leaves
    the position of patch merging ambiguous. ``version`` is the Swin version the weights
    are for (1: SwinBackbone, 2: SwinV2Backbone, None: either); a checkpoint of the other
    version raises a CheckpointFormatError that names its version.
    """
    keys = list(keys)
    check_swin_version(keys, version)
    found = []
    if any(_MMSWIN_KEY.match(key) for key in keys):
        found.append('mmswin')
    if any(_OPENMMLAB_KEY.match(key) for key in keys):
        found.append('openmmlab')
    if any(_LAYERS_KEY.match(key) for key in keys):
        found.append('timm' if _merging_starts_stage(keys, shapes or {}) else 'official')
    if any(_TORCHVISION_KEY.match(key) for key in keys):
        found.append('torchvision')
    if len(found) == 1:
        return found[0]
    if found:
        raise CheckpointFormatError(
            f'the checkpoint mixes the key layouts of {", ".join(found)}; it is not one Swin state dict'
        )
    raise CheckpointFormatError(_unknown_layout_message(keys))


def _unknown_layout_message(keys: list) -> str:
    accepted = ', '.join(FORMAT_NAMES.values())
    for key in keys:
        match = _SWIN_ANYWHERE.search(key)
        if match and match.start(1) > 0:
            prefix = key[: match.start(1)]
            return (
                f'Swin weights seem to sit under the prefix {prefix!r} (e.g. {key!r}); pass '
                f"prefix={prefix!r} (init_cfg=dict(type='Pretrained', checkpoint=..., prefix={prefix!r}) or "
                'tools/model_converters/convert_checkpoint.py --prefix)'
            )
    return (
        f'no Swin Transformer weights in a known layout: the keys look like {_sample(keys)} ({len(keys)} keys). '
        f'Accepted formats: {accepted}. A checkpoint of another model family cannot be loaded into SwinBackbone'
    )


def _merging_starts_stage(keys: list, shapes: Mapping[str, tuple]) -> bool:
    """True for timm >= 0.9, where ``layers.{i}.downsample`` merges *into* stage ``i``."""
    keys = [_normalise_timm_key(key) for key in keys]
    stages = {int(m.group(1)) for m in (re.match(r'layers\.(\d+)\.blocks\.', key) for key in keys) if m}
    merges = {int(m.group(1)) for m in (re.match(r'layers\.(\d+)\.downsample\.', key) for key in keys) if m}
    if not merges:
        return any(key.startswith('head.fc.') for key in keys)
    if 0 in merges:
        return False  # official: stage 0 ends with a merge; timm's stage 0 has none
    if max(stages, default=-1) in merges:
        return True  # timm: the last stage starts with a merge; the official last stage has none
    # Width test: official merging doubles the width of its own stage; timm's outputs it.
    for index in sorted(merges):
        reduction = shapes.get(f'layers.{index}.downsample.reduction.weight')
        qkv = shapes.get(f'layers.{index}.blocks.0.attn.qkv.weight')
        if reduction is not None and qkv is not None:
            return reduction[0] == qkv[1]
    return any(key.startswith('head.fc.') for key in keys)


def _normalise_timm_key(key: str) -> str:
    # timm's feature-extraction wrapper flattens ``layers.0`` into ``layers_0``.
    return re.sub(r'^layers_(\d+)\.', r'layers.\1.', key)


def _dropped_by_design(key: str) -> Optional[str]:
    if key.startswith('head.') or key == 'head':
        return HEAD
    if key.endswith(('relative_position_index', 'attn_mask', 'relative_coords_table', 'attn.k_bias')):
        return BUFFER
    return None


def _num_stages(keys: Iterable[str], pattern: str) -> int:
    indices = [int(m.group(1)) for m in (re.match(pattern, key) for key in keys) if m]
    return max(indices) + 1 if indices else 0


def _convert_official(key: str, tensor: Tensor, last_stage: int) -> tuple[str, Tensor]:
    key = re.sub(r'^layers\.(\d+)\.', r'stages.\1.', key)
    return _final_norm(key, last_stage), _position_embedding(key, tensor)


def _convert_timm(key: str, tensor: Tensor, last_stage: int) -> tuple[str, Tensor]:
    key = _normalise_timm_key(key)
    # timm merges at the start of stage i; mmswin at the end of stage i - 1.
    key = re.sub(r'^layers\.(\d+)\.downsample\.', lambda m: f'stages.{int(m.group(1)) - 1}.downsample.', key)
    return _convert_official(key, tensor, last_stage)


def _convert_torchvision(key: str, tensor: Tensor, last_stage: int) -> tuple[str, Tensor]:
    # features.0 = (Conv2d, Permute, LayerNorm); odd features = stages; even features > 0 = merging.
    key = re.sub(r'^features\.0\.0\.', 'patch_embed.proj.', key)
    key = re.sub(r'^features\.0\.2\.', 'patch_embed.norm.', key)
    match = re.match(r'features\.(\d+)\.(.*)', key)
    if match:
        index, rest = int(match.group(1)), match.group(2)
        if index % 2 == 1:
            rest = re.sub(r'^(\d+)\.mlp\.0\.', r'\1.mlp.fc1.', rest)
            rest = re.sub(r'^(\d+)\.mlp\.3\.', r'\1.mlp.fc2.', rest)
            key = f'stages.{(index - 1) // 2}.blocks.{rest}'
        elif index > 0:
            key = f'stages.{index // 2 - 1}.downsample.{rest}'
    return _final_norm(key, last_stage), tensor


def _convert_openmmlab(key: str, tensor: Tensor, last_stage: int) -> tuple[str, Tensor]:
    key = re.sub(r'^patch_embed\.projection\.', 'patch_embed.proj.', key)
    key = key.replace('.attn.w_msa.', '.attn.')
    key = key.replace('.ffn.layers.0.0.', '.mlp.fc1.').replace('.ffn.layers.1.', '.mlp.fc2.')
    if re.match(r'stages\.\d+\.downsample\.reduction\.weight$', key):
        tensor = unfold_to_official_reduction(tensor)
    elif re.match(r'stages\.\d+\.downsample\.norm\.(weight|bias)$', key):
        tensor = unfold_to_official_norm(tensor)
    # MMClassification < 1.0 named the last output norm ``norm``.
    return _final_norm(key, last_stage), _position_embedding(key, tensor)


def _convert_mmpretrain_v2(key: str, tensor: Tensor, last_stage: int) -> tuple[str, Tensor]:
    # MMPretrain's SwinTransformerV2 merges at the start of stage i, as timm; its merging
    # norm follows the reduction (2C channels), so only the reduction is reordered.
    key = re.sub(r'^stages\.(\d+)\.downsample\.', lambda m: f'stages.{int(m.group(1)) - 1}.downsample.', key)
    key = re.sub(r'^patch_embed\.projection\.', 'patch_embed.proj.', key)
    key = key.replace('.attn.w_msa.', '.attn.')
    key = key.replace('.ffn.layers.0.0.', '.mlp.fc1.').replace('.ffn.layers.1.', '.mlp.fc2.')
    if re.match(r'stages\.\d+\.downsample\.reduction\.weight$', key):
        tensor = unfold_to_official_reduction(tensor)
    return _final_norm(key, last_stage), _position_embedding(key, tensor)


def _split_qkv_bias(converted: ConvertedCheckpoint) -> None:
    """torchvision's V2 keeps q, k and v biases in one ``qkv.bias`` (the k part unused,
    zeroed on every call): it becomes ``q_bias`` and ``v_bias``, in place."""
    for key in [key for key in converted.state_dict if key.endswith('.attn.qkv.bias')]:
        bias = converted.state_dict.pop(key)
        source = converted.source_keys.pop(key)
        channels = bias.shape[0] // 3
        stem = key[: -len('qkv.bias')]
        for name, part in (('q_bias', bias[:channels]), ('v_bias', bias[2 * channels :])):
            converted.state_dict[stem + name] = part.clone()
            converted.source_keys[stem + name] = source


def _convert_mmswin(key: str, tensor: Tensor, last_stage: int) -> tuple[str, Tensor]:
    return key, tensor


def _final_norm(key: str, last_stage: int) -> str:
    # The classification ``norm`` normalises the last stage's output: mmswin's norm{last}.
    return re.sub(r'^norm\.', f'norm{last_stage}.', key)


def _position_embedding(key: str, tensor: Tensor) -> Tensor:
    if key != 'absolute_pos_embed' or tensor.dim() != 3:
        return tensor
    try:
        return position_embedding_to_grid(tensor)
    except ValueError:
        return tensor  # not square: the model's grid decides (see loading.fit_state_dict)


def unfold_to_official_reduction(weight: Tensor) -> Tensor:
    """Patch-merging ``reduction.weight`` ``[out, 4C]`` from nn.Unfold order to the official order.

    nn.Unfold (MMDetection, MMSegmentation, MMPretrain) orders the 4C inputs as
    ``(c, dy, dx)``; the official ``cat(x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2])``
    orders them ``(dx, dy, c)``.
    """
    out_channels, in_channels = weight.shape
    return weight.reshape(out_channels, in_channels // 4, 2, 2).permute(0, 3, 2, 1).reshape(out_channels, in_channels)


def unfold_to_official_norm(vector: Tensor) -> Tensor:
    """Patch-merging ``norm.weight`` / ``norm.bias`` ``[4C]``: Unfold order -> official order."""
    return vector.reshape(-1, 2, 2).permute(2, 1, 0).reshape(-1)


_CONVERTERS: dict[str, tuple[Callable, str]] = {
    # format: (key converter, regex whose group 1 is the stage index, to count stages)
    'mmswin': (_convert_mmswin, r'stages\.(\d+)\.'),
    'openmmlab': (_convert_openmmlab, r'stages\.(\d+)\.'),
    'official': (_convert_official, r'layers\.(\d+)\.'),
    'timm': (_convert_timm, r'layers[._](\d+)\.'),
    'torchvision': (_convert_torchvision, r'features\.(\d+)\.\d+\.'),
}


def convert_state_dict(
    checkpoint: Any, prefix: Optional[str] = None, version: Optional[int] = None
) -> ConvertedCheckpoint:
    """Convert a checkpoint of any accepted format, Swin V1 or V2, to mmswin's layout.

    Args:
        checkpoint: a loaded checkpoint: a state dict, or a dict wrapping one under
            ``state_dict`` / ``model``, with or without ``module.`` / ``backbone.`` prefixes.
        prefix: take only the keys under this prefix (e.g. ``'backbone.'``); by default
            ``backbone.`` keys when there are any, else all keys.
        version: the Swin version the weights are for (1 or 2), or None for either.

    Raises:
        CheckpointFormatError: no tensors, an unknown or mixed layout, the other Swin version.
    """
    tensors, outside = extract_state_dict(checkpoint, prefix)
    found_version = check_swin_version(tensors.keys(), version) or version or 1
    fmt = detect_format(tensors.keys(), {key: tuple(value.shape) for key, value in tensors.items()}, found_version)
    convert, stage_pattern = _CONVERTERS[fmt]
    if found_version == 2 and fmt == 'openmmlab':
        convert = _convert_mmpretrain_v2
    num_stages = _num_stages(tensors.keys(), stage_pattern)
    if fmt == 'torchvision':
        num_stages = (num_stages + 1) // 2  # features 1, 3, 5, 7 are the stages
    converted = ConvertedCheckpoint(OrderedDict(), fmt, version=found_version)
    if outside:
        converted.ignored[OUTSIDE] = outside
    for key, tensor in tensors.items():
        reason = _dropped_by_design(_normalise_timm_key(key))
        if reason is not None:
            converted.ignored[reason] += 1
            continue
        new_key, new_tensor = convert(key, tensor, num_stages - 1)
        if new_key in converted.state_dict:
            raise CheckpointFormatError(
                f'checkpoint keys {converted.source_keys[new_key]!r} and {key!r} both map to '
                f'{new_key!r}; the state dict is not one {FORMAT_NAMES[fmt]} model'
            )
        converted.state_dict[new_key] = new_tensor
        converted.source_keys[new_key] = key
    if found_version == 2 and fmt == 'torchvision':
        _split_qkv_bias(converted)
    if fmt == 'official':
        has_output_norms = any(re.match(r'norm\d+\.', key) for key in tensors)
        converted.variant = 'detection/segmentation' if has_output_norms else 'classification'
    return converted


def _sample(keys: Iterable, count: int = 4) -> str:
    keys = list(keys)
    shown = ', '.join(repr(key) for key in keys[:count])
    return f'[{shown}{", ..." if len(keys) > count else ""}]'


def _top_level_names(keys: Iterable[str]) -> str:
    names = list(OrderedDict.fromkeys(key.split('.', 1)[0] + '.' for key in keys))
    return _sample(names, count=6)
