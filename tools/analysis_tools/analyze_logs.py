"""Plot loss and metric curves from MMEngine training logs.

    python tools/analysis_tools/analyze_logs.py plot_curve work_dirs/mask_rcnn_swin_t_shapes \\
        --keys loss bbox_mAP segm_mAP
    python tools/analysis_tools/analyze_logs.py plot_curve run_a/vis_data/scalars.json \\
        run_b/vis_data/scalars.json \\
        --keys loss mIoU --legend baseline masked --out curves.png

What a LOG and a key are: :mod:`mmswin.analysis.logs`.
"""

from __future__ import annotations

import argparse

from mmswin.engine.preflight import run_tool


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Analyse MMEngine training logs (vis_data/scalars.json)')
    commands = parser.add_subparsers(dest='command', required=True)
    plot = commands.add_parser('plot_curve', help='plot loss / metric curves as a PNG')
    plot.add_argument('logs', nargs='+', metavar='LOG', help='scalars.json file(s) or work dir(s)')
    plot.add_argument(
        '--keys',
        nargs='+',
        default=['loss'],
        help='keys to plot, one panel each; "bbox_mAP" matches "coco/bbox_mAP" (default: loss)',
    )
    plot.add_argument('--legend', nargs='+', help='a name per log (default: <work dir>/<run>)')
    plot.add_argument('--title', help='figure title')
    plot.add_argument('--out', default='curves.png', help='output PNG (default: curves.png)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmswin.analysis.logs import plot_curve

    plot_curve(args.logs, args.keys, args.out, legend=args.legend, title=args.title)
    return 0


if __name__ == '__main__':
    run_tool(main)
