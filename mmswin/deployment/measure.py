"""The figures of docs/deployment.md: what exports to ONNX, checked in ONNX Runtime at
which sizes, with the largest difference from PyTorch (``tools/deployment/measure_onnx.py``).

Every model runs with seeded random weights, moved off their initial values (norms,
biases and position tables perturbed), so that each parameter's place is checked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from torch import nn

from . import onnx_export as ox

BACKBONE_SIZES = [(2, 229, 311), (1, 97, 131), (1, 333, 501), (1, 800, 1333), (3, 224, 224), (1, 64, 64)]
MODEL_SIZES = [(2, 229, 311), (1, 97, 131), (1, 512, 512)]
DETECTOR_SIZES = [(2, 229, 311), (1, 97, 131), (1, 800, 1333)]
LOW_PRECISION_SIZES = [(1, 97, 131), (3, 224, 224)]

# The whole models of the table: (name, config, the part exported (ox.build_part), what
# it outputs, the sizes checked).
WHOLE_MODELS = [
    ('UperNet Swin-T', 'configs/upernet_swin_t.py', 'model', 'image -> logits', MODEL_SIZES),
    ('Mask R-CNN Swin-T', 'configs/mask_rcnn_swin_t.py', 'features', 'FPN + RPN outputs', DETECTOR_SIZES),
]


@dataclass
class Row:
    """One line of the table: what was exported, at which sizes, and how close it came."""

    what: str
    dtype: str
    export_shape: str
    checks: Sequence[ox.SizeCheck] = ()
    reference: str = 'PyTorch eager fp32'
    note: str = ''

    def markdown(self) -> str:
        sizes = '<br>'.join(f'{"x".join(map(str, c.shape))}: {c.max_abs_diff:.1e}' for c in self.checks) or '-'
        scale = max((c.max_abs_value for c in self.checks), default=0.0)
        scale_text = f'{scale:.1f}' if self.checks else '-'
        cells = (self.what, self.dtype, self.export_shape, sizes, scale_text, self.reference, self.note)
        return '| ' + ' | '.join(cells) + ' |'


HEADER = (
    '| exported | dtype | traced at | size: max abs difference | largest output | against | note |\n'
    '| --- | --- | --- | --- | --- | --- | --- |'
)


def perturbed(module: nn.Module, seed: int = 0) -> nn.Module:
    """``module`` with norms, biases and position tables moved off their initial values."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if 'relative_position_bias_table' in name:
                param.copy_(noise)
            elif param.dim() == 1:
                param.add_(0.1 * noise)
    return module.eval()


def with_channels(sizes: Sequence[tuple[int, int, int]]) -> list[tuple[int, int, int, int]]:
    return [(b, 3, h, w) for b, h, w in sizes]


def measure_module(
    what: str,
    module: nn.Module,
    example_size: tuple[int, int, int],
    sizes: Sequence[tuple[int, int, int]],
    folder: str,
    output_names: Optional[list[str]] = None,
    log: Callable[[str], None] = print,
) -> list[Row]:
    """Export ``module`` once (dynamic B/H/W, traced at ``example_size`` moved up to pad
    every stage), then run the file in ONNX Runtime and the ``torch.export`` program at
    ``sizes`` (only those the graph is valid for)."""
    minimum = ox.min_dynamic_size(module)
    example_size = (
        example_size[0],
        ox.padding_example_size(module, example_size[1]),
        ox.padding_example_size(module, example_size[2]),
    )
    valid = [s for s in sizes if min(s[1:]) >= minimum]
    outside = [s for s in sizes if min(s[1:]) < minimum]
    example = torch.randn(*with_channels([example_size])[0], generator=torch.Generator().manual_seed(0))
    path = os.path.join(folder, what.replace(' ', '_').replace('/', '_') + '.onnx')
    log(f'exporting {what} at {example_size} ...')
    exportable = ox.make_exportable(module)
    program = ox.export_program(exportable, example)
    ox.export_onnx(module, example, path, output_names=output_names, program=program)
    note = f'H, W >= {minimum}'
    if outside:
        note += '; not valid at ' + ', '.join('x'.join(map(str, s)) for s in outside)
    traced = 'x'.join(map(str, (example_size[0], 3, *example_size[1:])))
    checks = ox.compare_in_onnxruntime(path, module, with_channels(valid))
    for check in checks:
        log('  ' + check.line())
    rows = [Row(what, 'fp32', traced, checks, note=note)]
    program_checks = [program_check(program, module, shape) for shape in with_channels(valid[:3])]
    rows.append(Row(what + ' (torch.export program)', 'fp32', traced, program_checks, note=note))
    return rows


def program_check(program: torch.export.ExportedProgram, module: nn.Module, shape) -> ox.SizeCheck:
    """The ``torch.export`` program against eager at one size."""
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = ox.flat_outputs(program.module()(x))
        expected = ox.flat_outputs(module(x))
    diff = max(float((a - b).abs().max()) for a, b in zip(got, expected))
    return ox.SizeCheck(tuple(shape), diff, max(float(t.abs().max()) for t in expected), ())


def measure_low_precision(what: str, module: nn.Module, folder: str, log: Callable[[str], None] = print) -> list[Row]:
    rows = []
    example = torch.randn(2, 3, 229, 311, generator=torch.Generator().manual_seed(0))
    for dtype, name in ((torch.float16, 'fp16'), (torch.bfloat16, 'bf16')):
        log(f'exporting {what} in {name} ...')
        result = ox.check_low_precision(
            module, example, dtype, with_channels(LOW_PRECISION_SIZES), os.path.join(folder, f'{name}.onnx')
        )
        if result.error:
            rows.append(Row(what, name, '2x3x229x311', note=f'ONNX Runtime CPU cannot load it: {result.error}'))
            continue
        rows.append(Row(what, name, '2x3x229x311', result.against_autocast, reference=f'PyTorch autocast {name}'))
        rows.append(Row(what, name, '2x3x229x311', result.against_fp32))
    return rows


def config_part(path: str, part: str) -> tuple[nn.Module, Optional[list[str]]]:
    from mmswin.engine.setup_runner import load_config

    torch.manual_seed(0)
    module, names = ox.build_part(load_config(path), None, part)
    return perturbed(module), names


def measure_all(folder: str, quick: bool = False, log: Callable[[str], None] = print) -> list[Row]:
    """Every row of docs/deployment.md's table (``quick``: the mini backbone instead of
    Swin-T, and no whole models)."""
    from mmswin.models import SwinBackbone, SwinV2Backbone

    arch = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4)) if quick else 'tiny'
    label = 'mini' if quick else 'Swin-T'
    rows: list[Row] = []
    torch.manual_seed(0)
    v1 = perturbed(SwinBackbone(arch=arch, window_size=7, drop_path_rate=0.0))
    rows += measure_module(f'{label} backbone', v1, (2, 229, 311), BACKBONE_SIZES, folder, log=log)
    torch.manual_seed(0)
    v2 = perturbed(SwinV2Backbone(arch=arch, window_size=8, drop_path_rate=0.0))
    rows += measure_module(f'{label} V2 backbone (window 8)', v2, (2, 229, 311), BACKBONE_SIZES, folder, log=log)
    rows += measure_low_precision(f'{label} backbone', v1, folder, log=log)
    if quick:
        return rows
    for name, config, part, outputs, sizes in WHOLE_MODELS:
        module, names = config_part(config, part)
        rows += measure_module(f'{name} ({config}), {outputs}', module, (2, 229, 311), sizes, folder, names, log=log)
    return rows
