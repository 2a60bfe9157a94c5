"""Write a file or a folder all at once: build it beside its final place, then rename.

A crash or a full disk mid-way leaves the old version (or nothing), never half a new one.
Each writer builds under its own hidden name (``.NAME.<random>.partial``), so two
writers of one path never share a half-written file; the last complete one wins.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import tempfile
from typing import Iterator

PARTIAL_SUFFIX = '.partial'


@contextlib.contextmanager
def atomic_directory(path: str) -> Iterator[str]:
    """Yield a temporary folder; on success it replaces ``path``, on error it is removed.

    A crash mid-way never leaves a half-written data set at ``path``.
    """
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix='.partial-' + os.path.basename(path) + '-', dir=parent)
    try:
        yield staging
        if os.path.exists(path):
            shutil.rmtree(path)
        os.replace(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def partial_path(path: str) -> str:
    """A hidden, unique path beside ``path`` to build it under."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f'.{name}.{secrets.token_hex(8)}{PARTIAL_SUFFIX}')


@contextlib.contextmanager
def atomic_file(path: str) -> Iterator[str]:
    """Yield a hidden, unique path beside ``path`` to write to; on success the file is
    synced, renamed to ``path`` and the rename synced; on error the partial file is
    removed and ``path`` keeps its old content (or stays absent).

    Raises:
        FileNotFoundError: the body finished without writing the yielded path.
    """
    partial = partial_path(path)
    try:
        yield partial
        with open(partial, 'rb+') as file:
            os.fsync(file.fileno())
        os.replace(partial, path)
        _sync_folder(os.path.dirname(partial))
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def remove_partial_files(folder: str) -> list[str]:
    """Remove the partial files an interrupted :func:`atomic_file` left directly in
    ``folder``; returns their paths. Call it only while no writer can be at work there
    (e.g. holding the folder's lock)."""
    leftovers = glob.glob(os.path.join(glob.escape(folder), f'.*{PARTIAL_SUFFIX}'))
    for leftover in leftovers:
        with contextlib.suppress(FileNotFoundError):
            os.remove(leftover)
    return leftovers


def _sync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable (a power cut after it cannot undo it)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # some file systems do not open folders; the rename still stands
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
