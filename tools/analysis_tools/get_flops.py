"""Parameters and FLOPs of a config's model and of its backbone.

    python tools/analysis_tools/get_flops.py configs/mask_rcnn_swin_t.py   # at the config's test size
    python tools/analysis_tools/get_flops.py configs/upernet_swin_t.py --shape 512 2048

FLOPs are multiply-adds of the work the default path runs, on a randomly initialised
model (:mod:`mmswin.analysis.complexity`).
"""

from __future__ import annotations

import argparse

from mmswin.engine.preflight import run_tool
from mmswin.errors import PreflightError


def parse_args(argv=None):
    from mmengine.config import DictAction

    from mmswin.engine.cli import add_shape_argument

    parser = argparse.ArgumentParser(
        description="Parameters and FLOPs (multiply-adds) of a config's model and "
        'of its backbone, on a randomly initialised model'
    )
    parser.add_argument('config', help='config file, e.g. configs/mask_rcnn_swin_t.py')
    add_shape_argument(
        parser,
        "input height and width (default: the config's test size: 800x1333 for COCO, the crop size for segmentation)",
    )
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys: key=value')
    args = parser.parse_args(argv)
    if args.shape and min(args.shape) < 1:
        raise PreflightError(f'--shape needs two positive sizes, got {args.shape[0]} {args.shape[1]}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmswin.analysis.complexity import print_complexity

    print_complexity(args.config, args.cfg_options, tuple(args.shape) if args.shape else None)
    return 0


if __name__ == '__main__':
    run_tool(main)
