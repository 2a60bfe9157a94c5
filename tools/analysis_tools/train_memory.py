"""Peak training memory of a config's model under the memory recipes (docs/memory_recipes.md).

    python tools/analysis_tools/train_memory.py configs/dino_5scale_swin_l_12e.py \\
        --sizes 192 256 256 384 --target-size 800 1333 --target-batch 2 --out work_dirs/train_memory.md

Tensor-level accounting on CPU (:mod:`mmswin.analysis.train_memory`): parameters and optimiser state,
plus the peak of the allocations during one training step; not RSS.
"""

from __future__ import annotations

import argparse
import json

from mmswin.engine.preflight import run_tool
from mmswin.errors import PreflightError


def parse_args(argv=None):
    from mmengine.config import DictAction

    from mmswin.analysis.train_memory import RECIPES

    parser = argparse.ArgumentParser(description='Peak training memory of a config under memory recipes (CPU)')
    parser.add_argument('config', help='config file, e.g. configs/dino_5scale_swin_l_12e.py')
    parser.add_argument(
        '--sizes',
        nargs=4,
        type=int,
        default=(192, 256, 256, 384),
        metavar=('H1', 'W1', 'H2', 'W2'),
        help='the two input sizes measured; the estimate extends the line through their peaks',
    )
    parser.add_argument('--batch', type=int, default=1, help='images per step (default 1)')
    parser.add_argument('--recipes', nargs='+', choices=list(RECIPES), help='default: all')
    parser.add_argument('--target-size', nargs=2, type=int, default=(800, 1333), metavar=('H', 'W'))
    parser.add_argument('--target-batch', type=int, default=2, help='images per GPU of the published run')
    parser.add_argument('--out', help='write the markdown table here (and the bytes as JSON beside it)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys: key=value')
    args = parser.parse_args(argv)
    if min([*args.sizes, *args.target_size]) < 1 or args.batch < 1 or args.target_batch < 1:
        raise PreflightError('--sizes, --target-size, --batch and --target-batch must be positive')
    args.sizes = [tuple(args.sizes[:2]), tuple(args.sizes[2:])]
    if args.sizes[0][0] * args.sizes[0][1] == args.sizes[1][0] * args.sizes[1][1]:
        raise PreflightError(f'--sizes: the two sizes must differ in pixels, got {args.sizes}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from mmswin.analysis.train_memory import markdown_table, measure_recipes

    torch.manual_seed(0)
    results = measure_recipes(args.config, args.sizes, args.batch, args.recipes, args.cfg_options)
    table = markdown_table(results, args.sizes, args.batch, args.target_size, args.target_batch)
    print(table)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + '\n')
        with open(args.out.rsplit('.', 1)[0] + '.json', 'w') as f:
            json.dump(dict(config=args.config, sizes=args.sizes, batch=args.batch, results=results), f, indent=1)
    return 0


if __name__ == '__main__':
    run_tool(main)
