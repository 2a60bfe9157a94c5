"""Patch embedding (image -> tokens) and patch merging (tokens -> 2x coarser tokens).

Both pad at the bottom and right, so any input size works and the top-left pixel of
every output token is where the unpadded model would put it.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmswin.kernels import is_transforming


def pad_to_multiple(x: Tensor, multiple: int, channels_last: bool) -> Tensor:
    """Zero-pad the spatial dims at bottom/right up to a multiple; no copy if already there
    (in eager code: traced, compiled or exported code always pads, by zero where it fits,
    so that one graph serves every size).

    ``channels_last`` says whether ``x`` is ``[B, H, W, C]`` (True) or ``[B, C, H, W]``.
    """
    height, width = (x.shape[1], x.shape[2]) if channels_last else (x.shape[2], x.shape[3])
    # The padded size as ``multiple * ceil(size / multiple)``, of non-negative numbers:
    # a symbolic size then provably divides (no shape guard under torch.export), and the
    # ONNX exporter's truncating ``//`` rounds it right.
    pad_h = (height + multiple - 1) // multiple * multiple - height
    pad_w = (width + multiple - 1) // multiple * multiple - width
    if not is_transforming(x) and not (pad_h or pad_w):
        return x
    return F.pad(x, (0, 0, 0, pad_w, 0, pad_h) if channels_last else (0, pad_w, 0, pad_h))


class PatchEmbed(nn.Module):
    """Split the image into ``patch_size`` x ``patch_size`` patches and embed each linearly.

    ``[B, in_channels, H, W] -> [B, ceil(H / p), ceil(W / p), embed_dims]`` (channels last).
    """

    def __init__(self, in_channels: int = 3, embed_dims: int = 96, patch_size: int = 4, patch_norm: bool = True):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dims, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dims) if patch_norm else nn.Identity()

    def forward(self, images: Tensor) -> Tensor:
        # A channels-last image makes the convolution write [B, H, W, C] directly, so the
        # permute below is free instead of a transposing copy of the largest feature map.
        images = pad_to_multiple(images, self.patch_size, channels_last=False)
        x = self.proj(images.contiguous(memory_format=torch.channels_last))
        return self.norm(x.permute(0, 2, 3, 1))


class PatchMerging(nn.Module):
    """Concatenate each 2x2 neighbourhood, normalise, and project ``4C -> 2C``.

    The concatenation order is the one of the official Swin code and its public
    weights: ``x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]``.
    Odd sizes are zero-padded first. ``[B, H, W, C] -> [B, ceil(H/2), ceil(W/2), out_channels]``.
    """

    def __init__(self, in_channels: int, out_channels: int | None = None):
        super().__init__()
        out_channels = out_channels or 2 * in_channels
        self.norm = nn.LayerNorm(4 * in_channels)
        self.reduction = nn.Linear(4 * in_channels, out_channels, bias=False)

    def forward(self, x: Tensor, out_size: Optional[tuple] = None) -> Tensor:
        """``out_size``: as :func:`concat_2x2` takes it."""
        return self.reduction(self.norm(concat_2x2(x, out_size)))


def concat_2x2(x: Tensor, out_size: Optional[tuple] = None) -> Tensor:
    """``[B, H, W, C] -> [B, ceil(H/2), ceil(W/2), 4C]``: each 2x2 neighbourhood, zero-padded
    at bottom/right for odd sizes, concatenated in the official order
    ``x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]`` (V1 and V2 alike).

    ``out_size``: ``(ceil(H/2), ceil(W/2))`` as the caller computed it, or None. Traced
    code passes it computed from the image size (the same numbers), so that a symbolic
    size stays one ceiling division of the input's, not one nested ceiling per stage,
    whose index arithmetic makes Inductor's code generation and C++ compile slow.
    """
    if out_size is None:
        x = pad_to_multiple(x, 2, channels_last=True)
    else:
        x = F.pad(x, (0, 0, 0, 2 * out_size[1] - x.shape[2], 0, 2 * out_size[0] - x.shape[1]))
    B, H, W, C = x.shape
    # [B, H/2, dy, W/2, dx, C] -> [B, H/2, W/2, dx, dy, C]: channel block k = 2*dx + dy.
    return x.view(B, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 4, 2, 5).reshape(B, H // 2, W // 2, 4 * C)


class PatchMergingV2(nn.Module):
    """Swin V2 patch merging: concatenate each 2x2 neighbourhood (:func:`concat_2x2`),
    project ``4C -> 2C`` without bias, *then* normalise (V1 normalises before projecting).

    ``[B, H, W, C] -> [B, ceil(H/2), ceil(W/2), out_channels]``.
    """

    def __init__(self, in_channels: int, out_channels: int | None = None):
        super().__init__()
        out_channels = out_channels or 2 * in_channels
        self.reduction = nn.Linear(4 * in_channels, out_channels, bias=False)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: Tensor, out_size: Optional[tuple] = None) -> Tensor:
        """``out_size``: as :func:`concat_2x2` takes it."""
        return self.norm(self.reduction(concat_2x2(x, out_size)))
