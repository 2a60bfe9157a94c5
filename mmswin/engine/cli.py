"""Command-line flags the tools share (MMDetection's spelling)."""

from __future__ import annotations

import argparse
import os

TRUST_CHECKPOINT_HELP = (
    'UNSAFE: load the checkpoint with a full pickle (torch.load(weights_only=False)), which runs any '
    'code in the file; only for a file you trust that holds Python objects besides tensors'
)


def add_shape_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """``--shape H W``: two ints (checked by the tool before any work)."""
    parser.add_argument('--shape', nargs=2, type=int, metavar=('H', 'W'), help=help)


def add_runner_arguments(parser: argparse.ArgumentParser, trust_help: str = TRUST_CHECKPOINT_HELP) -> None:
    """``--cfg-options``, ``--trust-checkpoint`` (described by ``trust_help``),
    ``--launcher`` and ``--local_rank``."""
    from .config_checks import CfgOptionsAction

    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, help='override config keys: key=value ...')
    parser.add_argument('--trust-checkpoint', action='store_true', help=trust_help)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runner_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse, and give ``LOCAL_RANK`` the ``--local_rank`` an older launcher passes."""
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args
