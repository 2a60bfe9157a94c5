"""Draw how a Swin stage attends on a feature map of a given size.

    python tools/analysis_tools/visualize_windows.py --size 14 14 --window 7
    python tools/analysis_tools/visualize_windows.py --size 10 13 --window 4 --mask-padding --out work_dirs/windows

What is drawn (window partition, cyclic shift, region labels, attention masks, and
``masks.npz`` with the arrays): :mod:`mmswin.analysis.windows`.
"""

from __future__ import annotations

import argparse

from mmswin.engine.preflight import check_output_folder, run_tool
from mmswin.errors import PreflightError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw the window partition, the cyclic shift, the region labels and '
        'the attention masks a Swin stage uses on an H x W feature map'
    )
    parser.add_argument(
        '--size',
        nargs=2,
        type=int,
        required=True,
        metavar=('H', 'W'),
        help='feature map size in tokens (stage 0 of an image: ceil(H/4) x ceil(W/4))',
    )
    parser.add_argument('--window', type=int, default=7, help='window size M; the shift is M // 2 (default: 7)')
    parser.add_argument(
        '--mask-padding',
        action='store_true',
        help='as SwinBackbone(mask_padding=True): padded tokens are masked out as keys',
    )
    parser.add_argument('--out', default='work_dirs/windows', help='output folder (default: work_dirs/windows)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    height, width = args.size
    if height < 1 or width < 1:
        raise PreflightError(f'--size needs two positive sizes, got {height} {width}')
    if args.window < 2:
        raise PreflightError(f'--window must be >= 2 (a window of {args.window} has no shift), got {args.window}')
    check_output_folder(args.out, '--out')
    from mmswin.analysis.windows import draw_windows

    draw_windows(height, width, args.window, args.mask_padding, args.out)
    return 0


if __name__ == '__main__':
    run_tool(main)
