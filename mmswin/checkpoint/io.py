"""Reading checkpoint files with errors that say what is wrong with the file.

Every read is ``torch.load(weights_only=True)``, stated explicitly, so it holds whatever
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` says; a full pickle (which can run code hidden in
the file) is loaded only for a file passed with ``trusted=True``, or after
:func:`trust_checkpoints` (the tools' ``--trust-checkpoint``).
"""

from __future__ import annotations

import os
import re
import zipfile
from typing import Any

import torch

from mmswin.errors import CheckpointFormatError

from .digest import verify_digest

_ZIP_MAGIC = b'PK\x03\x04'
# torch words a refused global two ways: one that is merely not allow-listed, and one from
# a module it blocks outright (os, subprocess, builtins.eval, ...), as in torch 2.13:
#   "Unsupported global: GLOBAL numpy.dtype was not an allowed global by default"
#   "Trying to load unsupported GLOBAL posix.system whose module posix is blocked"
_UNSUPPORTED_GLOBAL = re.compile(r'Unsupported global: GLOBAL (\S+)')
_BLOCKED_GLOBAL = re.compile(r'unsupported GLOBAL (\S+) whose module (\S+) is blocked')
_TRUST_HINT = (
    'If you trust the file, pass --trust-checkpoint (a full pickle load, which can run code in the file), or '
    'convert it once with tools/model_converters/convert_checkpoint.py --trust-file'
)

_trust_all = False


def trust_checkpoints(trusted: bool = True) -> None:
    """Load every checkpoint in this process with a full pickle (``weights_only=False``).

    UNSAFE: a checkpoint is a pickle, and a full pickle load runs any code the file
    carries. Only for files you made or trust (e.g. another tool's training checkpoint
    with numpy arrays in it); the tools call this for ``--trust-checkpoint`` alone.
    """
    global _trust_all
    _trust_all = trusted


def checkpoints_trusted() -> bool:
    """Whether :func:`trust_checkpoints` is in effect."""
    return _trust_all


def verify_checkpoint_file(path: str, trusted: bool | None = None) -> None:
    """Checks without loading the tensors: the path is a file, not empty, not text (an
    HTML page saved by a failed download), a zip-format checkpoint has its end, its bytes
    match the checksum saved beside it (if any, see :mod:`.digest`), and the safe loader
    accepts what it holds (its pickle is read with the tensor data memory-mapped, not
    read, in torch's zip format; a file in the legacy format is loaded whole). The last
    check is skipped for a ``trusted`` file (None: as :func:`trust_checkpoints` set).

    Raises:
        FileNotFoundError: no such file.
        CheckpointFormatError: the message says what is wrong and what to do
            (:class:`~.digest.CheckpointDigestError` for a checksum mismatch).
    """
    path = os.path.expanduser(path)
    is_zip = _check_file(path)
    if not (_trust_all if trusted is None else trusted):
        _load(path, 'cpu', trusted=False, mmap=is_zip)  # only torch's zip format can be memory-mapped


def read_checkpoint(path: str, trusted: bool | None = None, map_location: Any = 'cpu') -> Any:
    """``torch.load`` a checkpoint weights-only, after the checks of :func:`verify_checkpoint_file`.

    Args:
        path: a local file.
        trusted: load with ``weights_only=False``, for a file you trust that carries
            Python objects besides tensors (e.g. an MMEngine training checkpoint with
            numpy arrays in its message hub); None: as :func:`trust_checkpoints` set.
        map_location: as for ``torch.load``.

    Raises:
        FileNotFoundError: no such file.
        CheckpointFormatError: a directory, empty, truncated, damaged (checksum), not a
            PyTorch checkpoint, or refused by the safe loader; the message says which.
    """
    path = os.path.expanduser(path)
    _check_file(path)
    return _load(path, map_location, trusted=_trust_all if trusted is None else trusted, mmap=False)


def _check_file(path: str) -> bool:
    """The checks that read no pickle; returns whether the file is in torch's zip format."""
    if os.path.isdir(path):
        raise CheckpointFormatError(f'{path!r} is a directory, not a checkpoint file; pass the .pth file')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path!r}')
    size = os.path.getsize(path)
    if size == 0:
        raise CheckpointFormatError(f'{path!r} is empty (0 bytes): the download or copy did not finish')
    with open(path, 'rb') as file:
        head = file.read(64)
    is_zip = head.startswith(_ZIP_MAGIC)
    if is_zip and not zipfile.is_zipfile(path):
        raise CheckpointFormatError(
            f'{path!r} is truncated: it starts like a PyTorch checkpoint but its end is missing ({size} bytes); '
            'download or copy it again'
        )
    if _looks_like_text(head):
        raise CheckpointFormatError(
            f'{path!r} is not a PyTorch checkpoint: it is text starting with {head[:32]!r} (a failed download '
            'often saves an HTML error page)'
        )
    verify_digest(path)
    return is_zip


def _load(path: str, map_location: Any, trusted: bool, mmap: bool) -> Any:
    try:
        return torch.load(path, map_location=map_location, weights_only=not trusted, mmap=mmap)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ... by file damage
        raise CheckpointFormatError(unreadable_message(path, error)) from error


def unreadable_message(path: str, error: BaseException) -> str:
    """One line for a file ``torch.load`` failed on: refused (see :func:`refusal_message`)
    or damaged."""
    return refusal_message(path, error) or (
        f'could not read {path!r} ({os.path.getsize(path)} bytes) as a PyTorch checkpoint ({_reason(error)}). The '
        'file is damaged or truncated (download it again), or it is not a checkpoint'
    )


def refusal_message(path: str, error: BaseException) -> str | None:
    """One line if the safe loader refused ``path`` for a global it names: one it blocks
    (loading would run code) or one it does not allow (objects besides tensors); else None."""
    blocked = _BLOCKED_GLOBAL.search(str(error))
    if blocked:
        return (
            f'{path!r} was refused by the safe loader: loading it would call {blocked.group(1)} (module '
            f'{blocked.group(2)}, which torch blocks because it runs code or commands). A checkpoint never needs '
            'that: treat the file as hostile and get the weights from a source you trust'
        )
    unsupported = _UNSUPPORTED_GLOBAL.search(str(error))
    if unsupported:
        return (
            f'{path!r} holds Python objects besides tensors (e.g. {unsupported.group(1)}), which the safe '
            f'loader torch.load(weights_only=True) refuses. {_TRUST_HINT}'
        )
    return None


def _reason(error: BaseException) -> str:
    if isinstance(error, EOFError):
        return 'its data ends early'
    unpickler = re.search(r'Unpickler error:\s*(\S[^\n]*)', str(error))
    if unpickler:
        return f'invalid pickle data: {unpickler.group(1).strip()}'
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode('utf-8')
    except UnicodeDecodeError:
        return False
    return all(char.isprintable() or char.isspace() for char in text)
