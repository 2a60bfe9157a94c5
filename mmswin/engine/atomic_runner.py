"""A Runner whose checkpoints appear whole or not at all, prove it, and load safely."""

from __future__ import annotations

import inspect
import logging
import os

from mmengine.dist import master_only
from mmengine.logging import print_log
from mmengine.runner import Runner

from mmswin.atomic import atomic_file, remove_partial_files
from mmswin.checkpoint.digest import file_digest, remove_orphan_digests, write_digest

from .checkpoint_hook import KeepUntilSavedCheckpointHook
from .safe_loading import use_safe_loading
from .work_dir_lock import WorkDirLock


class AtomicCheckpointRunner(Runner):
    """An MMEngine Runner with these guarantees (same arguments as ``Runner``):

    - **Whole checkpoints.** Each checkpoint is written to a unique hidden file beside
      it, synced, given a SHA-256 file (``iter_N.pth.sha256``) and renamed into place;
      a kill or a full disk during saving leaves the previous checkpoints intact.
    - **None lost.** ``CheckpointHook`` (``max_keep_ckpts``, best checkpoints) removes an
      outdated checkpoint only after its successor is saved.
    - **One run per work dir.** A runner that can train takes the work dir's lock
      (:mod:`.work_dir_lock`) before it writes anything there (rank 0, for the process's
      lifetime or until :meth:`train` returns), then removes the partial files a killed
      run left. A second run gets one line naming the holder.
    - **Safe loading.** Checkpoints load weights-only and checksum-verified
      (:mod:`.safe_loading`); resuming without a checkpoint (``resume=True`` and no
      ``load_from``) picks the newest verified ``iter_N.pth``/``epoch_N.pth`` in the
      work dir, falling back past damaged ones, or starts fresh with a warning.
    """

    def __init__(self, *args, **kwargs):
        arguments = inspect.signature(Runner.__init__).bind(self, *args, **kwargs).arguments
        use_safe_loading()
        self._work_dir_lock = None
        if arguments.get('train_cfg') is not None and _launch_rank() == 0:
            self._work_dir_lock = _take_work_dir(arguments['work_dir'])
        try:
            super().__init__(*args, **kwargs)
        except BaseException:
            self._release_work_dir()
            raise

    def train(self):
        try:
            return super().train()
        finally:
            self._release_work_dir()

    def register_hook(self, hook, priority=None) -> None:
        if isinstance(hook, dict) and _names_checkpoint_hook(hook.get('type')):
            hook = dict(hook, type=KeepUntilSavedCheckpointHook)
        super().register_hook(hook, priority)

    def load_or_resume(self) -> None:
        if not self._has_loaded and self._resume and self._load_from is None:
            from .resume import newest_complete_checkpoint

            self._load_from = newest_complete_checkpoint(self.work_dir)
            if self._load_from is None:
                print_log(
                    f"--resume: no complete checkpoint in '{self.work_dir}' to resume from; training starts from "
                    'scratch',
                    logger='current',
                    level=logging.WARNING,
                )
                self._resume = False
        super().load_or_resume()

    @master_only
    def save_checkpoint(self, out_dir: str, filename: str, *args, **kwargs) -> None:
        path = os.path.join(out_dir, filename)
        with atomic_file(path) as partial:
            super().save_checkpoint(out_dir, os.path.basename(partial), *args, **kwargs)
            write_digest(path, file_digest(partial))  # before the rename: a published file has its checksum

    def _release_work_dir(self) -> None:
        if self._work_dir_lock is not None:
            self._work_dir_lock.release()


def _take_work_dir(work_dir: str) -> WorkDirLock:
    """Lock the work dir, then clear what an interrupted save left there."""
    lock = WorkDirLock(os.path.abspath(work_dir)).acquire()
    if lock.stale_holder:
        print_log(
            f'took over the lock on {lock.work_dir} from {lock.stale_holder}, which ended without releasing it',
            logger='current',
        )
    removed = remove_partial_files(lock.work_dir) + remove_orphan_digests(lock.work_dir)
    if removed:
        print_log(
            f'removed {len(removed)} partial file(s) an interrupted run left in {lock.work_dir}', logger='current'
        )
    return lock


def _names_checkpoint_hook(hook_type) -> bool:
    from mmengine.hooks import CheckpointHook

    if isinstance(hook_type, str):
        return hook_type.rsplit('.', 1)[-1] == 'CheckpointHook'
    return hook_type is CheckpointHook


def _launch_rank() -> int:
    """This process's rank as its launcher set it (torchrun, Slurm, MPI); 0 alone."""
    for name in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK', 'PMI_RANK'):
        if os.environ.get(name, '').isdigit():
            return int(os.environ[name])
    return 0
