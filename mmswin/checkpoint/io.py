"""Reading checkpoint files with errors that say what is wrong with the file."""

from __future__ import annotations

import os
import re
import zipfile
from typing import Any

import torch

from .errors import CheckpointFormatError

_ZIP_MAGIC = b'PK\x03\x04'


def verify_checkpoint_file(path: str) -> None:
    """Cheap checks that need no loading: the file exists, is not empty, is not text (an
    HTML page saved by a failed download), and a zip-format checkpoint has its end.

    Raises:
        FileNotFoundError: no such file.
        CheckpointFormatError: the message says what is wrong and what to do.
    """
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint not found: {path!r}')
    size = os.path.getsize(path)
    if size == 0:
        raise CheckpointFormatError(f'{path!r} is empty (0 bytes): the download or copy did not finish')
    with open(path, 'rb') as file:
        head = file.read(64)
    if head.startswith(_ZIP_MAGIC) and not zipfile.is_zipfile(path):
        raise CheckpointFormatError(
            f'{path!r} is truncated: it starts like a PyTorch checkpoint but its end is missing ({size} bytes); '
            'download or copy it again'
        )
    if _looks_like_text(head):
        raise CheckpointFormatError(
            f'{path!r} is not a PyTorch checkpoint: it is text starting with {head[:32]!r} (a failed download '
            'often saves an HTML error page)'
        )


def read_checkpoint(path: str, trusted: bool = False) -> Any:
    """``torch.load`` a checkpoint on the CPU, in the safe ``weights_only`` mode.

    Args:
        path: a local file.
        trusted: load with ``weights_only=False``, for a file you trust that carries
            Python objects besides tensors (e.g. an MMEngine training checkpoint with
            numpy arrays in its message hub). Applies to this one file only.

    Raises:
        FileNotFoundError: no such file.
        CheckpointFormatError: empty, truncated, not a PyTorch checkpoint, or refused by
            the safe loader; the message says which.
    """
    path = os.path.expanduser(path)
    verify_checkpoint_file(path)
    try:
        return torch.load(path, map_location='cpu', weights_only=not trusted)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ... by file damage
        raise CheckpointFormatError(_unreadable_message(path, error)) from error


def _unreadable_message(path: str, error: Exception) -> str:
    unsafe_global = re.search(r'Unsupported global: GLOBAL (\S+)', str(error))
    if unsafe_global:
        return (
            f'{path!r} holds Python objects besides tensors (e.g. {unsafe_global.group(1)}), which the safe '
            'loader torch.load(weights_only=True) refuses. If you trust the file, convert it once with '
            'tools/convert_checkpoint.py --trust-file, or load it yourself with torch.load(path, '
            'weights_only=False) and pass the dict to model.load_state_dict()'
        )
    return (
        f'could not read {path!r} ({os.path.getsize(path)} bytes) as a PyTorch checkpoint ({_reason(error)}). The '
        'file is damaged or truncated (download it again), or it is not a checkpoint'
    )


def _reason(error: Exception) -> str:
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
