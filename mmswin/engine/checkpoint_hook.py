"""A CheckpointHook that deletes an outdated checkpoint only after its successor is saved.

MMEngine's ``CheckpointHook`` removes the checkpoint that ``max_keep_ckpts`` (or a new
best) pushes out *before* saving the new one, so with ``max_keep_ckpts=1`` a kill during
the save leaves no checkpoint at all. This hook queues those removals and carries them
out once the new checkpoint is in place, with their checksum files.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from mmswin.checkpoint.digest import digest_path


class _DeferredRemovals:
    """A file backend whose ``remove``/``rmtree`` only note the path; the rest passes through."""

    def __init__(self, backend: Any):
        self._backend = backend
        self.paths: list[str] = []

    def remove(self, path: str) -> None:
        self.paths.append(path)

    def rmtree(self, path: str) -> None:
        self.paths.append(path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


class KeepUntilSavedCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (same arguments) that keeps an outdated checkpoint until the
    checkpoint replacing it is saved, then removes it and its ``.sha256`` file."""

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        with self._removals_after_save():
            super()._save_checkpoint_with_step(runner, step, meta)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        with self._removals_after_save():
            super()._save_best_checkpoint(runner, metrics)

    @contextlib.contextmanager
    def _removals_after_save(self) -> Iterator[None]:
        backend = self.file_backend
        deferred = _DeferredRemovals(backend)
        self.file_backend = deferred
        try:
            yield
        finally:
            self.file_backend = backend
        # Reached only when the save went through.
        if not is_main_process():
            return
        current = {getattr(self, 'last_ckpt', None), getattr(self, 'best_ckpt_path', None)}
        current.update(getattr(self, 'best_ckpt_path_dict', {}).values())
        for path in deferred.paths:
            if path in current:
                continue
            if backend.isfile(path):
                backend.remove(path)
            elif backend.isdir(path):
                backend.rmtree(path)
            if backend.isfile(digest_path(path)):
                backend.remove(digest_path(path))
