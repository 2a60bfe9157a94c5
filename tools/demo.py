"""Draw a detector's or a segmentor's predictions on images.

    python tools/demo.py data/coco_shapes/val2017 configs/demo/mask_rcnn_swin_t_shapes.py \\
        work_dirs/mask_rcnn_swin_t_shapes/iter_1200.pth --out-dir work_dirs/demo_det
    python tools/demo.py photo.jpg configs/upernet_swin_t.py upernet.pth --device cuda

What is drawn and how: :mod:`mmswin.analysis.demo`.
"""

from __future__ import annotations

import argparse

from mmswin.engine.cli import TRUST_CHECKPOINT_HELP
from mmswin.engine.preflight import run_tool


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw the predictions of a detector (boxes, masks, class names) or '
        'a segmentor (colour overlay) on an image or a folder of images'
    )
    parser.add_argument('image', metavar='IMAGE_OR_FOLDER', help='an image file, or a folder of images')
    parser.add_argument('config', help='config file, e.g. configs/demo/mask_rcnn_swin_t_shapes.py')
    parser.add_argument('checkpoint', help='checkpoint (.pth) written by tools/train.py')
    parser.add_argument('--out-dir', default='work_dirs/demo', help='where the pictures go (default: work_dirs/demo)')
    parser.add_argument(
        '--score-thr', type=float, default=0.3, help='detection: draw objects scoring at least this (default: 0.3)'
    )
    parser.add_argument('--opacity', type=float, default=0.5, help='segmentation: overlay opacity (default: 0.5)')
    parser.add_argument('--device', help='cpu, cuda or cuda:N (default: cuda when available, else cpu)')
    parser.add_argument('--trust-checkpoint', action='store_true', help=TRUST_CHECKPOINT_HELP)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmswin.analysis.demo import draw_predictions

    return draw_predictions(**vars(args))  # the flags are named as its arguments


if __name__ == '__main__':
    run_tool(main)
