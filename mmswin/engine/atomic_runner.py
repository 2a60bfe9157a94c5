"""A Runner whose checkpoints appear whole or not at all."""

from __future__ import annotations

import os

from mmengine.dist import master_only
from mmengine.runner import Runner

from mmswin.atomic import atomic_file


class AtomicCheckpointRunner(Runner):
    """Writes each checkpoint to a hidden temporary file, syncs it, then renames it.

    A kill or a full disk during saving leaves the previous checkpoints intact and
    never a truncated ``iter_N.pth`` for ``--resume`` to trip over.
    """

    @master_only
    def save_checkpoint(self, out_dir: str, filename: str, *args, **kwargs) -> None:
        with atomic_file(os.path.join(out_dir, filename)) as partial:
            super().save_checkpoint(out_dir, os.path.basename(partial), *args, **kwargs)
