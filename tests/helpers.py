"""Helpers shared by tests: small architectures, random weights, peer key layouts, row maps."""

import re
from collections import OrderedDict

import torch
from torch import nn

from mmswin.models import SwinBackbone
from mmswin.models.layers.token_gather import RowMap

# A 4-stage Swin small enough for fast tests; heads divide every stage width.
MINI_ARCH = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))
INPUT_SIZE = (1, 3, 61, 75)  # a multiple of neither the window nor 32
WINDOW = 7


def to_official_layout(state_dict: dict) -> OrderedDict:
    """mmswin keys -> the official Swin detection layout (``layers.{i}`` for ``stages.{i}``)."""
    return OrderedDict(
        ('layers.' + key[len('stages.') :] if key.startswith('stages.') else key, value)
        for key, value in state_dict.items()
    )


def perturb_(module: torch.nn.Module, seed: int = 1234) -> torch.nn.Module:
    """Move norms, biases and position tables away from their init values, so that a
    parity test also checks where each of them is applied."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if 'relative_position_bias_table' in name or 'absolute_pos_embed' in name:
                param.copy_(noise)
            elif param.dim() == 1:
                param.add_(0.1 * noise)
    return module


# --- peer layouts, built by renaming mmswin keys (official concatenation order) ---


def randomize_(module: nn.Module, seed: int) -> nn.Module:
    """Random values for every parameter, at scales that keep activations O(1), so a
    weight in the wrong place or order changes the outputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if 'relative_position_bias_table' in name or 'absolute_pos_embed' in name:
                param.copy_(noise)
            elif name.endswith('logit_scale'):  # Swin V2: exp() of it scales the cosines, about 10
                param.copy_(2.3 + 0.3 * noise)
            elif param.dim() >= 2:
                param.copy_(noise / param[0].numel() ** 0.5)
            elif name.endswith('weight'):
                param.copy_(1.0 + 0.2 * noise)
            else:
                param.copy_(0.2 * noise)
    return module


def mini_backbone(**kwargs) -> SwinBackbone:
    return SwinBackbone(arch=MINI_ARCH, drop_path_rate=0.0, **kwargs)


def stage_outputs(model: nn.Module, seed: int = 7, size=INPUT_SIZE) -> list:
    x = torch.randn(size, generator=torch.Generator().manual_seed(seed))
    model.eval()  # not chained: MMDetection's SwinTransformer.train() returns None
    with torch.no_grad():
        return [out.clone() for out in model(x)]


# Arguments every backbone checks (SwinBackboneBase's), each with the error it raises and
# words the message must contain.
COMMON_BAD_ARGS = [
    (dict(arch='huge'), ValueError, 'arch'),
    (dict(arch=dict(embed_dims=16, depths=(2, 2), num_heads=(1,))), ValueError, 'depths'),
    (dict(arch=dict(embed_dims=16, depths=(2,), num_heads=(3,))), ValueError, 'num_heads'),
    (dict(arch=dict(embed_dims=16, depths=(2,))), ValueError, 'num_heads'),
    (dict(window_size=0), ValueError, 'window_size'),
    (dict(patch_size=0), ValueError, 'patch_size'),
    (dict(out_indices=(4,)), ValueError, 'out_indices'),
    (dict(out_indices=()), ValueError, 'out_indices'),
    (dict(frozen_stages=5), ValueError, 'frozen_stages'),
    (dict(frozen_stages=-2), ValueError, 'frozen_stages'),
    (dict(attn_impl='flash'), ValueError, 'attn_impl'),
    (dict(drop_path_rate=1.0), ValueError, 'drop_path_rate'),
    (dict(pretrain_img_size=(256, 256, 256)), ValueError, 'pretrain_img_size'),
    (dict(pretrained=123), TypeError, 'pretrained'),
    (dict(pretrained='a.pth', init_cfg=dict(type='Pretrained', checkpoint='b.pth')), ValueError, 'pretrained'),
]


# Inputs every backbone's forward rejects before any work, with the error and words.
BAD_INPUTS = [
    (torch.randn(3, 32, 32), ValueError, '4-D'),
    (torch.randn(1, 1, 32, 32), ValueError, 'in_channels'),
    (torch.randn(1, 3, 0, 32), ValueError, 'empty'),
    (torch.randint(0, 255, (1, 3, 32, 32), dtype=torch.uint8), TypeError, 'floating'),
    ([[1.0]], TypeError, 'Tensor'),
]


def assert_autocast_close(model: nn.Module, dtype: torch.dtype = torch.bfloat16, size=(1, 3, 61, 77)) -> None:
    """``model``'s stage outputs under CPU autocast to ``dtype`` are finite and within 5%
    (mean absolute error against the mean magnitude) of its fp32 outputs."""
    x = torch.randn(size)
    with torch.no_grad():
        reference = model(x)
        with torch.autocast('cpu', dtype=dtype):
            low = model(x)
    for exact, approximate in zip(reference, low):
        assert torch.isfinite(approximate).all()
        assert (exact - approximate.float()).abs().mean() < 0.05 * exact.abs().mean() + 1e-3


def _index_buffer(window=WINDOW):
    return torch.arange((window * window) ** 2) % (2 * window - 1) ** 2  # content is never used, only dropped


def official_layout(state_dict: dict, classification: bool) -> OrderedDict:
    """The official Swin repository's keys: ``layers.{i}``, with its persistent buffers; a
    classification model has the final ``norm`` and ``head`` instead of ``norm{i}``."""
    out = OrderedDict()
    for key, value in state_dict.items():
        if classification and re.match(r'norm[012]\.', key):
            continue
        key = re.sub(r'^stages\.', 'layers.', key)
        if classification:
            key = re.sub(r'^norm3\.', 'norm.', key)
        out[key] = value
        block = re.match(r'(layers\.\d+\.blocks\.(\d+))\.attn\.qkv\.weight$', key)
        if block:
            out[f'{block.group(1)}.attn.relative_position_index'] = _index_buffer().view(WINDOW**2, WINDOW**2)
            if classification and int(block.group(2)) % 2 == 1:
                out[f'{block.group(1)}.attn_mask'] = torch.zeros(4, WINDOW**2, WINDOW**2)
    if classification:
        out['head.weight'] = torch.randn(10, state_dict['norm3.weight'].shape[0])
        out['head.bias'] = torch.randn(10)
    return out


def timm_layout(state_dict: dict) -> OrderedDict:
    """timm >= 0.9: merging at the start of the next stage, ``head.fc``, no persistent buffers."""
    out = OrderedDict()
    for key, value in official_layout(state_dict, classification=True).items():
        if key.endswith(('relative_position_index', 'attn_mask')):
            continue
        key = re.sub(r'^layers\.(\d+)\.downsample\.', lambda m: f'layers.{int(m.group(1)) + 1}.downsample.', key)
        key = re.sub(r'^head\.', 'head.fc.', key)
        out[key] = value
    return out


def torchvision_layout(state_dict: dict) -> OrderedDict:
    """torchvision: features.0 = (conv, permute, norm), odd features = stages (``mlp.0``,
    ``mlp.3``), even features > 0 = patch merging; ``norm`` and ``head`` at the top."""
    out = OrderedDict()
    for key, value in state_dict.items():
        if re.match(r'norm[012]\.', key):
            continue
        key = key.replace('patch_embed.proj.', 'features.0.0.').replace('patch_embed.norm.', 'features.0.2.')
        key = re.sub(r'^stages\.(\d+)\.blocks\.', lambda m: f'features.{2 * int(m.group(1)) + 1}.', key)
        key = re.sub(r'^stages\.(\d+)\.downsample\.', lambda m: f'features.{2 * int(m.group(1)) + 2}.', key)
        key = key.replace('.mlp.fc1.', '.mlp.0.').replace('.mlp.fc2.', '.mlp.3.')
        key = re.sub(r'^norm3\.', 'norm.', key)
        out[key] = value
        if key.endswith('.attn.qkv.weight'):
            out[key.replace('qkv.weight', 'relative_position_index')] = _index_buffer()
    out['head.weight'] = torch.randn(10, state_dict['norm3.weight'].shape[0])
    out['head.bias'] = torch.randn(10)
    return out


def random_map(padded: int, real: int, seed: int = 0, traced: bool = False) -> RowMap:
    """A :class:`RowMap` placing ``real`` rows at random among ``padded`` (the rest padding)."""
    generator = torch.Generator().manual_seed(seed)
    rows = torch.randperm(padded, generator=generator)[:real]
    from_source = torch.full((padded,), real, dtype=torch.long)
    from_source[rows] = torch.arange(real)
    return RowMap(rows, from_source, traced)


def plain_pad(source: torch.Tensor, row_map: RowMap) -> torch.Tensor:
    """``pad_rows`` by plain ops: ``source`` with a zero row appended, gathered by ``from_source``."""
    zero_row = torch.zeros(source.shape[0], 1, source.shape[2], dtype=source.dtype)
    return torch.cat([source, zero_row], 1).index_select(1, row_map.from_source)
