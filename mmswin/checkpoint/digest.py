"""A SHA-256 checksum beside each checkpoint, so a file damaged after saving is caught.

``iter_8.pth`` gets ``iter_8.pth.sha256`` in ``sha256sum`` format (``sha256sum -c
iter_8.pth.sha256`` checks it by hand). It is written before the checkpoint is renamed
into place, so a complete checkpoint always has its checksum; a checkpoint without one
(from another tool) is accepted on the other checks alone. Light to import: no torch.
"""

from __future__ import annotations

import hashlib
import os

from mmswin.atomic import atomic_file
from mmswin.errors import CheckpointDigestError

DIGEST_SUFFIX = '.sha256'
_CHUNK = 1 << 22

# path -> (size, mtime_ns) of files verified in this process: a file checked before the
# work and loaded after it is read for hashing once.
_verified: dict[str, tuple[int, int]] = {}


def digest_path(path: str) -> str:
    return path + DIGEST_SUFFIX


def file_digest(path: str) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits."""
    sha = hashlib.sha256()
    with open(path, 'rb') as file:
        for chunk in iter(lambda: file.read(_CHUNK), b''):
            sha.update(chunk)
    return sha.hexdigest()


def write_digest(path: str, digest: str) -> None:
    """Write ``path``'s checksum file (atomically), naming the file as ``path``'s basename."""
    sidecar = digest_path(path)
    with atomic_file(sidecar) as partial:
        with open(partial, 'w') as file:
            file.write(f'{digest}  {os.path.basename(path)}\n')


def remove_orphan_digests(folder: str) -> list[str]:
    """Remove the checksum files in ``folder`` whose checkpoint is absent (a kill between
    writing the checksum and renaming the checkpoint); returns their paths."""
    orphans = [
        os.path.join(folder, name)
        for name in os.listdir(folder)
        if name.endswith(DIGEST_SUFFIX) and not os.path.exists(os.path.join(folder, name[: -len(DIGEST_SUFFIX)]))
    ]
    for orphan in orphans:
        os.remove(orphan)
    return orphans


def verify_digest(path: str) -> bool:
    """Check ``path`` against its checksum file; False if it has none.

    Raises:
        CheckpointDigestError: the checksum differs, or the checksum file is unreadable;
            the message names both files.
    """
    sidecar = digest_path(path)
    if not os.path.isfile(sidecar):
        return False
    stat = os.stat(path)
    key = os.path.abspath(path)
    if _verified.get(key) == (stat.st_size, stat.st_mtime_ns):
        return True
    with open(sidecar, errors='replace') as file:
        expected = file.read().split(maxsplit=1)[:1]
    if not expected or len(expected[0]) != 64:
        raise CheckpointDigestError(
            f"{path!r} has an unreadable checksum file '{sidecar}' (expected 64 hex digits); "
            'delete that file to load the checkpoint without the check'
        )
    actual = file_digest(path)
    if actual != expected[0].lower():
        raise CheckpointDigestError(
            f'{path!r} is damaged: its SHA-256 ({actual[:16]}...) differs from the one saved with it '
            f"({expected[0][:16]}..., in '{sidecar}'), so its bytes changed after saving (disk or copy "
            'error); use another checkpoint'
        )
    _verified[key] = (stat.st_size, stat.st_mtime_ns)
    return True
