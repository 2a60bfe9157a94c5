"""Write a file or a folder all at once: build it beside its final place, then rename.

A crash or a full disk mid-way leaves the old version (or nothing), never half a new one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Iterator


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


@contextlib.contextmanager
def atomic_file(path: str) -> Iterator[str]:
    """Yield a hidden path beside ``path`` to write to; on success the file is synced and
    renamed to ``path``, on error (or if nothing was written) it is removed."""
    partial = os.path.join(os.path.dirname(os.path.abspath(path)), f'.{os.path.basename(path)}.partial')
    try:
        yield partial
        with open(partial, 'rb+') as file:
            os.fsync(file.fileno())
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
