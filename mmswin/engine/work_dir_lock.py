"""One training run per work dir: an exclusive lock held for the run's lifetime.

The lock is ``flock`` on ``WORK_DIR/.mmswin.lock``, which records the holder (pid, host,
start time). The kernel drops it when the holder exits, however it exits (a SIGKILL
included), so a lock left by a killed run is simply taken over; the file's old content
then says whose it was. Forked children (data loader workers) close their copy, so a
worker outliving a killed trainer does not keep the work dir locked.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from typing import Optional

from mmswin.errors import WorkDirInUseError

LOCK_NAME = '.mmswin.lock'


class WorkDirLock:
    """The lock on one work dir; :meth:`acquire` it, :meth:`release` it (or exit)."""

    def __init__(self, work_dir: str):
        self.work_dir = work_dir
        self.path = os.path.join(work_dir, LOCK_NAME)
        self._descriptor: Optional[int] = None
        self.stale_holder = ''  # after acquire(): the record of a holder that died holding the lock

    @property
    def held(self) -> bool:
        return self._descriptor is not None

    def acquire(self) -> 'WorkDirLock':
        """Take the lock, or raise :class:`WorkDirInUseError` naming the live holder."""
        os.makedirs(self.work_dir, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 4096, 0).decode(errors='replace').strip()
            os.close(descriptor)
            holder = _describe(holder) or 'another run'
            raise WorkDirInUseError(
                f"work dir '{self.work_dir}' is in use by {holder}; pass another --work-dir, or wait for that run "
                'to end'
            ) from None
        except BaseException:
            os.close(descriptor)
            raise
        self.stale_holder = _describe(os.pread(descriptor, 4096, 0).decode(errors='replace').strip())
        record = f'pid={os.getpid()} host={socket.gethostname()} since={time.strftime("%Y-%m-%dT%H:%M:%S")}\n'
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, record.encode(), 0)
        self._descriptor = descriptor
        os.register_at_fork(after_in_child=self._forget_in_child)
        return self

    def release(self) -> None:
        """Clear the record and drop the lock (a holder that dies leaves its record)."""
        if self._descriptor is not None:
            descriptor, self._descriptor = self._descriptor, None
            os.ftruncate(descriptor, 0)
            os.close(descriptor)  # closing the only descriptor releases the flock

    def _forget_in_child(self) -> None:
        # The child's copy shares the lock; closing it leaves the parent's lock in place.
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None


def _describe(holder: str) -> str:
    """'pid=12 host=h since=...' -> 'pid 12 (host h, since ...)'; '' for no record."""
    fields = dict(part.split('=', 1) for part in holder.split() if '=' in part)
    if 'pid' not in fields:
        return 'another run' if holder else ''
    details = []
    if fields.get('host') and fields['host'] != socket.gethostname():
        details.append(f'host {fields["host"]}')
    if fields.get('since'):
        details.append(f'since {fields["since"].replace("T", " ")}')
    return f'pid {fields["pid"]}' + (f' ({", ".join(details)})' if details else '')
