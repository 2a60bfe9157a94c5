"""Helpers shared by tests: small architectures, random weights, peer key layouts."""

from collections import OrderedDict

import torch

# A 4-stage Swin small enough for fast tests; heads divide every stage width.
MINI_ARCH = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))


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
