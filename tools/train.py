"""Train a detector or segmentor with a SwinBackbone (MMEngine Runner).

    python tools/train.py configs/mask_rcnn_swin_t.py
    python tools/train.py configs/upernet_swin_t.py --amp --work-dir work_dirs/upernet

The config's default_scope (mmdet or mmseg) decides which library runs it. Flags are
MMDetection's: --work-dir, --resume [CKPT], --amp, --auto-scale-lr, --cfg-options,
--launcher none|pytorch|slurm.
"""

import argparse

from mmswin.engine.preflight import run_tool
from mmswin.errors import NonFiniteLossError


def parse_args(argv=None):
    from mmswin.engine.cli import add_runner_arguments, parse_runner_args

    parser = argparse.ArgumentParser(description='Train a detector or segmentor with mmswin.SwinBackbone')
    parser.add_argument('config', help='config file, e.g. configs/mask_rcnn_swin_t.py')
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: work_dirs/<config name>)')
    parser.add_argument('--amp', action='store_true', help='mixed precision (fp16 on CUDA, bf16 on CPU)')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by total batch size / auto_scale_lr.base_batch_size',
    )
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from CKPT, or without a value from the newest checkpoint in the work dir',
    )
    add_runner_arguments(
        parser,
        'UNSAFE: load checkpoints (--resume, load_from, pretrained) with a full pickle, which runs any code '
        'in the file; only for files you trust that hold Python objects besides tensors',
    )
    return parse_runner_args(parser, argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmswin.engine.entry_points import train

    return train(args)


if __name__ == '__main__':
    run_tool(main, also={NonFiniteLossError: 1})
