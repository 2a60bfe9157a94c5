"""Evaluate a checkpoint on the config's test set (COCO bbox/segm AP, or mIoU).

python tools/test.py configs/mask_rcnn_swin_t.py work_dirs/mask_rcnn_swin_t/epoch_12.pth

The checkpoint loads weights-only and is checked against its checksum file;
``--trust-checkpoint`` loads a full pickle instead (unsafe: it runs any code the file
carries). ``--out`` is written after the metrics are printed, all at once.
"""

import argparse

from mmswin.engine.preflight import run_tool


def parse_args(argv=None):
    from mmswin.engine.cli import add_runner_arguments, parse_runner_args

    parser = argparse.ArgumentParser(description='Test a detector or segmentor with mmswin.SwinBackbone')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file (.pth), or a work dir to use its newest checkpoint')
    parser.add_argument('--work-dir', help='where the evaluation log goes (default: work_dirs/<config name>)')
    parser.add_argument('--out', help='also dump the raw predictions to this .pkl file (after the metrics)')
    parser.add_argument('--show-dir', help='save pictures of the predictions under <work dir>/<timestamp>/SHOW_DIR')
    add_runner_arguments(parser)
    return parse_runner_args(parser, argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmswin.engine.entry_points import test

    return test(args)


if __name__ == '__main__':
    run_tool(main)
