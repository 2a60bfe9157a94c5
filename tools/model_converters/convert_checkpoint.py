"""Convert a Swin checkpoint of any public format to mmswin's format, once.

    python tools/model_converters/convert_checkpoint.py SRC DST [--window-size N] [--prefix P] [--trust-checkpoint]

Accepted: official Swin (classification or detection/segmentation), MMDetection 3.x /
MMSegmentation 1.x / MMPretrain, timm, torchvision, mmswin; the format is detected from
the keys. The output is ``{'state_dict': ..., 'meta': ...}`` with mmswin keys, and loads
through every path (``init_cfg=dict(type='Pretrained', checkpoint=DST)``, ``load_from``,
``load_state_dict``). Converting is optional: SwinBackbone converts on load anyway.
SRC loads weights-only (``--trust-checkpoint`` loads a full pickle: unsafe, it runs any
code the file carries); DST is written atomically with its checksum (``DST.sha256``).
"""

from __future__ import annotations

import argparse
import sys

from mmswin.engine.preflight import check_checkpoint_file, check_output_file
from mmswin.errors import PreflightError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='checkpoint to convert (.pth)')
    parser.add_argument('dst', help='where to write the mmswin checkpoint')
    parser.add_argument(
        '--window-size',
        type=int,
        default=None,
        help='resize the relative position bias tables (bicubic) to this window',
    )
    parser.add_argument(
        '--prefix',
        default=None,
        help="take the keys under this prefix, e.g. 'backbone.' (default: backbone. keys if any)",
    )
    parser.add_argument(
        '--trust-checkpoint',
        '--trust-file',
        dest='trust_file',
        action='store_true',
        help='UNSAFE: load SRC with a full pickle (torch.load(weights_only=False)), which runs any code in the '
        'file; only for a file you trust that holds Python objects besides tensors',
    )
    args = parser.parse_args(argv)
    if args.window_size is not None and args.window_size < 1:
        parser.error(f'--window-size must be >= 1, got {args.window_size}')
    return args


def check_paths(src: str, dst: str) -> None:
    """Refuse what would fail after the (possibly long) read of SRC: no SRC (or a visibly
    broken one), a DST that is a directory, or a DST in a place this user cannot write to."""
    check_checkpoint_file(src, 'SRC', 'give the path of a .pth checkpoint')
    check_output_file(dst, 'DST', 'swin.pth')


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.trust_file:
        return convert(args)
    from mmswin.checkpoint.io import trust_checkpoints

    trust_checkpoints()  # for the check of SRC too, which would refuse the objects the user trusts
    try:
        return convert(args)
    finally:
        trust_checkpoints(False)


def convert(args: argparse.Namespace) -> int:
    try:
        check_paths(args.src, args.dst)  # a missing SRC or a bad DST costs no torch start-up
    except PreflightError as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    from mmswin.checkpoint.convert import convert_checkpoint_file
    from mmswin.errors import CheckpointFormatError

    try:
        print(convert_checkpoint_file(args.src, args.dst, args.window_size, args.prefix, args.trust_file))
    except (OSError, ValueError, CheckpointFormatError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
