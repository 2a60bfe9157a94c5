"""Find the checkpoint ``--resume`` continues from."""

from __future__ import annotations

import glob
import logging
import os
import re

from mmswin.checkpoint.io import verify_checkpoint_file
from mmswin.errors import CheckpointFormatError, PreflightError

_PROGRESS = re.compile(r'(?:iter|epoch)_(\d+)\.pth$')


def newest_complete_checkpoint(work_dir: str) -> str | None:
    """The ``iter_N.pth`` / ``epoch_N.pth`` in ``work_dir`` with the largest N that passes
    :func:`~mmswin.checkpoint.io.verify_checkpoint_file` (complete, and matching its
    checksum if it has one); None if none does. Each newer one passed over is logged as
    one warning line that names it, the reason and the checkpoint used instead."""
    from mmengine.logging import print_log

    candidates = []
    for path in glob.glob(os.path.join(glob.escape(work_dir), '*.pth')):
        match = _PROGRESS.search(os.path.basename(path))
        if match and os.path.isfile(path):
            candidates.append((int(match.group(1)), os.path.getmtime(path), path))
    passed_over = []
    for _, _, path in sorted(candidates, reverse=True):
        try:
            verify_checkpoint_file(path)
        except (CheckpointFormatError, OSError) as error:
            passed_over.append((path, error))
            continue
        for skipped, error in passed_over:
            print_log(
                f'--resume: passing over {os.path.basename(skipped)} ({error}); resuming from the older '
                f'{os.path.basename(path)}',
                logger='current',
                level=logging.WARNING,
            )
        return path
    for skipped, error in passed_over:
        print_log(
            f'--resume: passing over {os.path.basename(skipped)} ({error})', logger='current', level=logging.WARNING
        )
    return None


def resume_checkpoint(path: str) -> str:
    """Check an explicit ``--resume CKPT`` before any work; the error names the file."""
    if os.path.isdir(path):
        raise PreflightError(
            f"checkpoint to resume from '{path}' is a directory, not a checkpoint file; pass a .pth file, or "
            '--resume alone to pick the newest complete checkpoint in the work dir'
        )
    if not os.path.isfile(path):
        raise PreflightError(
            f"checkpoint to resume from not found: '{path}'; pass an existing .pth, or --resume "
            'alone to pick the newest complete checkpoint in the work dir'
        )
    try:
        verify_checkpoint_file(path)
    except CheckpointFormatError as error:
        raise PreflightError(
            f'cannot resume: {error}; pass another checkpoint, or --resume alone to pick the newest complete one '
            'in the work dir'
        ) from None
    return path
