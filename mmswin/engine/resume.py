"""Find the checkpoint ``--resume`` continues from."""

from __future__ import annotations

import glob
import os
import re

from mmswin.checkpoint.errors import CheckpointFormatError
from mmswin.checkpoint.io import verify_checkpoint_file

from .preflight import PreflightError

_PROGRESS = re.compile(r'(?:iter|epoch)_(\d+)\.pth$')


def newest_complete_checkpoint(work_dir: str) -> str | None:
    """The ``iter_N.pth`` / ``epoch_N.pth`` in ``work_dir`` with the largest N that is a
    complete file (a truncated one, from a crash before atomic saving, is skipped)."""
    candidates = []
    for path in glob.glob(os.path.join(work_dir, '*.pth')):
        match = _PROGRESS.search(os.path.basename(path))
        if match:
            candidates.append((int(match.group(1)), os.path.getmtime(path), path))
    for _, _, path in sorted(candidates, reverse=True):
        try:
            verify_checkpoint_file(path)
        except (CheckpointFormatError, OSError):
            continue
        return path
    return None


def resume_checkpoint(path: str) -> str:
    """Check an explicit ``--resume CKPT`` before any work; the error names the file."""
    if not os.path.isfile(path):
        raise PreflightError(
            f"checkpoint to resume from not found: '{path}'; pass an existing .pth, or --resume "
            'alone to pick the newest complete checkpoint in the work dir'
        )
    try:
        verify_checkpoint_file(path)
    except CheckpointFormatError as error:
        raise PreflightError(
            f'cannot resume from {error}; pass another checkpoint, or --resume alone to pick the '
            'newest complete one in the work dir'
        ) from None
    return path
