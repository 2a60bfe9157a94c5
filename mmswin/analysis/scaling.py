"""Inference time against input size: SwinBackbone and a global-attention ViT encoder."""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmswin.models import SwinBackbone

from .peers import OURS, inference_run
from .timing import Bench, log


class GlobalAttentionEncoder(nn.Module):
    """A plain ViT encoder (DeiT-S shape by default): patch embedding, then ``depth``
    pre-norm blocks of global multi-head attention (fused SDPA) and a 4x MLP."""

    def __init__(self, embed_dims: int = 384, depth: int = 12, num_heads: int = 6, patch_size: int = 16):
        super().__init__()
        self.num_heads = num_heads
        self.patch_embed = nn.Conv2d(3, embed_dims, patch_size, patch_size)
        self.blocks = nn.ModuleList(
            [
                nn.ModuleDict(
                    dict(
                        norm1=nn.LayerNorm(embed_dims),
                        qkv=nn.Linear(embed_dims, 3 * embed_dims),
                        proj=nn.Linear(embed_dims, embed_dims),
                        norm2=nn.LayerNorm(embed_dims),
                        fc1=nn.Linear(embed_dims, 4 * embed_dims),
                        fc2=nn.Linear(4 * embed_dims, embed_dims),
                    )
                )
                for _ in range(depth)
            ]
        )

    def forward(self, images: Tensor) -> Tensor:
        x = self.patch_embed(images).flatten(2).transpose(1, 2)  # [B, L, C]
        B, L, C = x.shape
        for block in self.blocks:
            q, k, v = block['qkv'](block['norm1'](x)).view(B, L, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
            attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, L, C)
            x = x + block['proj'](attended)
            x = x + block['fc2'](F.gelu(block['fc1'](block['norm2'](x))))
        return x


def linear_fit(xs: list, ys: list) -> dict:
    """Least squares ``y = a + b x`` with its R^2."""
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sxx
    intercept = mean_y - slope * mean_x
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - mean_y) ** 2 for y in ys)
    return dict(intercept=intercept, slope=slope, r2=1 - ss_res / ss_tot if ss_tot > 0 else 1.0)


def bench_scaling(args, bench: Bench) -> dict:
    torch.manual_seed(0)
    ours = SwinBackbone(arch=args.arch, drop_path_rate=0.0).to(bench.device).eval()
    width = ours.num_features[min(2, len(ours.num_features) - 1)]
    vit = GlobalAttentionEncoder(embed_dims=width, num_heads=max(1, width // 64)).to(bench.device).eval()
    names = {
        OURS: f'SwinBackbone ({args.arch})',
        'global_attention': f'ViT, global attention (width {width}, depth 12, patch 16)',
    }
    times: dict = {name: [] for name in names}
    pixels = []
    for side in args.scaling_sizes:
        x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(side)).to(bench.device)
        log(f'scaling: {side}x{side}')
        timed = bench.interleaved(
            {OURS: inference_run(ours, x, bench), 'global_attention': inference_run(vit, x, bench)},
            repeats=args.scaling_repeats,
        )
        pixels.append(side * side)
        for name in names:
            times[name].append(timed[name]['median_s'])
    fits = {}
    for name in names:
        fit = linear_fit(pixels, times[name])
        exponent = linear_fit([math.log(p) for p in pixels], [math.log(t) for t in times[name]])['slope']
        fits[name] = dict(linear=fit, power_law_exponent=exponent)
    result = dict(sizes=list(args.scaling_sizes), pixels=pixels, time_s=times, fits=fits, labels=names)
    if args.plot:
        result['plot'] = plot_scaling(result, args.plot)
    return result


def plot_scaling(result: dict, path: str) -> str:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    megapixels = [p / 1e6 for p in result['pixels']]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    for name, marker in ((OURS, 'o'), ('global_attention', 's')):
        times = result['time_s'][name]
        fit = result['fits'][name]
        (line,) = ax.plot(
            megapixels,
            times,
            marker,
            label=f'{result["labels"][name]}: exponent '
            f'{fit["power_law_exponent"]:.2f}, linear R$^2$ {fit["linear"]["r2"]:.3f}',
        )
        grid = [megapixels[0] + (megapixels[-1] - megapixels[0]) * i / 50 for i in range(51)]
        linear = fit['linear']
        ax.plot(
            grid,
            [linear['intercept'] + linear['slope'] * g * 1e6 for g in grid],
            '-',
            color=line.get_color(),
            alpha=0.5,
            linewidth=1,
        )
    ax.set_xlabel(f'input pixels (millions), square images from {result["sizes"][0]} to {result["sizes"][-1]}')
    ax.set_ylabel('inference time, batch 1 (s)')
    ax.set_title('Time against pixels; lines: linear fits')
    ax.legend(fontsize=7, loc='upper left')
    ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
