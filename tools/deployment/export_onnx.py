"""Export a config's backbone, segmentor or detector dense part to ONNX with dynamic batch,
height and width, then check the file in ONNX Runtime against PyTorch.

    python tools/deployment/export_onnx.py configs/upernet_swin_t.py upernet.pth --out upernet.onnx --part model
    python tools/deployment/export_onnx.py configs/mask_rcnn_swin_t.py --part backbone --out swin_t.onnx
    python tools/deployment/export_onnx.py configs/mask_rcnn_swin_t.py mask_rcnn.pth --part features

``--part backbone``: images -> the backbone's stage maps; ``model`` (segmentors): images ->
logits at the input size; ``features`` (detectors): images -> the neck's maps and the first
dense head's raw outputs (Mask R-CNN: FPN maps, RPN scores and deltas). Images are what the
data preprocessor outputs (normalised, NCHW float). The file is written whole or not at
all, then run at the export size and two others; the largest difference from PyTorch
eager is printed for each (docs/deployment.md). Without a checkpoint the weights are random.
"""

from __future__ import annotations

import argparse
import os
import sys

from mmswin.engine.preflight import run_tool
from mmswin.errors import PreflightError

DEFAULT_SHAPE = (229, 311)  # pads every stage of a window-7 Swin; the example a trace should see
PARTS = ('backbone', 'model', 'features')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export a backbone, segmentor (--part model) or detector dense part (--part features) to one '
        'ONNX file with dynamic batch, height and width, and check it in ONNX Runtime'
    )
    parser.add_argument('config', help='config file, e.g. configs/upernet_swin_t.py')
    parser.add_argument(
        'checkpoint', nargs='?', help='checkpoint (.pth) written by tools/train.py (default: random weights)'
    )
    parser.add_argument('--out', help='the ONNX file to write (default: work_dirs/onnx/CONFIG_PART.onnx)')
    parser.add_argument(
        '--shape',
        nargs=2,
        metavar=('H', 'W'),
        help=f'height and width of the example the export traces (default: {DEFAULT_SHAPE[0]} {DEFAULT_SHAPE[1]}, '
        'moved up to the first size that needs window padding in every stage)',
    )
    parser.add_argument('--batch', default='2', help='batch of the example (default: 2)')
    shapes = parser.add_mutually_exclusive_group()
    shapes.add_argument('--dynamic', action='store_true', default=True, help='dynamic batch, height, width (default)')
    shapes.add_argument('--static', dest='dynamic', action='store_false', help='fix the example shape in the graph')
    parser.add_argument('--opset', default='18', help='ONNX opset, at least 18 (default: 18)')
    parser.add_argument('--part', default='backbone', help=f'what to export: {" | ".join(PARTS)} (default: backbone)')
    parser.add_argument('--skip-check', action='store_true', help='write the file without running it in ONNX Runtime')
    parser.add_argument(
        '--tolerance',
        type=float,
        default=1e-4,
        help='largest difference from PyTorch accepted, relative to max(1, largest output value) (default: 1e-4)',
    )
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='UNSAFE: load the checkpoint with a full pickle (torch.load(weights_only=False)), which runs any '
        'code in the file; only for a file you trust',
    )
    return parser.parse_args(argv)


def positive_ints(values, option: str, count: int) -> tuple[int, ...]:
    """``values`` (strings) as positive ints, or a PreflightError naming ``option``."""
    try:
        numbers = tuple(int(value) for value in values)
    except ValueError:
        numbers = ()
    if len(numbers) != count or min(numbers) < 1:
        raise PreflightError(
            f'{option} needs {"two positive ints" if count == 2 else "a positive int"}, got {" ".join(values)}'
        )
    return numbers


def check_onnx_packages() -> None:
    missing = []
    for name in ('onnx', 'onnxscript', 'onnxruntime'):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise PreflightError(f'{", ".join(missing)} not installed; run `make setup` (pins in requirements/runtime.txt)')


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmswin.engine.preflight import check_checkpoint_file, check_output_file
    from mmswin.engine.setup_runner import load_config

    cfg = load_config(args.config)
    if args.checkpoint:
        if args.trust_checkpoint:
            from mmswin.checkpoint.io import trust_checkpoints

            trust_checkpoints()
        check_checkpoint_file(
            args.checkpoint, 'checkpoint', 'pass the .pth written by tools/train.py (see its work dir)'
        )
    shape = positive_ints(args.shape, '--shape', 2) if args.shape else None
    (batch,) = positive_ints([args.batch], '--batch', 1)
    (opset,) = positive_ints([args.opset], '--opset', 1)
    if args.dynamic and batch < 2:
        raise PreflightError(
            f'--batch {batch}: a dynamic export traces a batch of at least 2 (torch.export fixes a dim it sees '
            'as 1); use --batch 2, or --static for a file of batch 1'
        )
    from mmswin.deployment import onnx_export as ox

    problem = ox.part_problem(cfg, args.part)
    if problem:
        raise PreflightError(problem)
    stem = os.path.splitext(os.path.basename(args.config))[0]
    out = args.out or os.path.join('work_dirs', 'onnx', f'{stem}_{args.part}.onnx')
    check_output_file(out, '--out', f'{stem}.onnx')
    check_onnx_packages()
    if opset < ox.MIN_OPSET:
        raise PreflightError(f'--opset {opset}: the ONNX exporter writes opset {ox.MIN_OPSET} or later; use --opset 18')
    max_opset = ox.max_onnxruntime_opset()
    if opset > max_opset:
        import onnxruntime

        raise PreflightError(
            f'--opset {opset}: ONNX Runtime {onnxruntime.__version__} runs opsets up to {max_opset}; '
            f'use --opset {ox.MIN_OPSET}..{min(max_opset, ox.MAX_EXPORTER_OPSET)}'
        )
    if opset > ox.MAX_EXPORTER_OPSET:
        raise PreflightError(
            f'--opset {opset}: the ONNX exporter was checked on these models up to opset '
            f'{ox.MAX_EXPORTER_OPSET} (its converter to later opsets lacks some operators); '
            f'use --opset {ox.MIN_OPSET}..{ox.MAX_EXPORTER_OPSET}'
        )

    import torch

    from mmswin.engine.safe_loading import use_safe_loading

    use_safe_loading()
    module, output_names = ox.build_part(cfg, args.checkpoint, args.part)
    if shape is None:
        shape = (ox.padding_example_size(module, DEFAULT_SHAPE[0]), ox.padding_example_size(module, DEFAULT_SHAPE[1]))
    min_size = ox.min_dynamic_size(module)
    if args.dynamic and min(shape) < min_size:
        raise PreflightError(
            f'--shape {shape[0]} {shape[1]}: a dynamic export of this model needs height and width >= {min_size}'
        )
    in_channels = getattr(ox.swin_backbone_of(module) or module, 'in_channels', 3)
    example = torch.randn(batch, in_channels, *shape, generator=torch.Generator().manual_seed(0))
    ox.export_onnx(module, example, out, opset=opset, dynamic=args.dynamic, output_names=output_names)
    weights = 'random weights' if not args.checkpoint else args.checkpoint
    sizes = f'batch 1..{ox.MAX_BATCH}, height and width {min_size}..{ox.MAX_SIZE}' if args.dynamic else 'static'
    print(
        f'wrote {out} ({os.path.getsize(out) / 2**20:.1f} MiB, opset {opset}, {sizes}): '
        f'{args.part} of {args.config} ({cfg.model.get("type")}, {weights})'
    )
    if args.skip_check:
        return 0
    sizes_to_check = ox.check_sizes(shape[0], shape[1], batch, min_size) if args.dynamic else [(batch, *shape)]
    shapes = [(b, in_channels, h, w) for b, h, w in sizes_to_check]
    print('ONNX Runtime (CPU) against PyTorch eager, fp32:')
    failed = False
    for check in ox.compare_in_onnxruntime(out, module, shapes):
        print(check.line())
        failed |= not check.max_abs_diff <= args.tolerance * max(1.0, check.max_abs_value)
    if failed:
        print(
            f'error: a difference exceeds --tolerance {args.tolerance:g} (relative to max(1, output))', file=sys.stderr
        )
        return 1
    return 0


if __name__ == '__main__':
    run_tool(main)
