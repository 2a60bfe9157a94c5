"""MMEngine reads checkpoints weights-only in mmswin's tools, whatever the environment says.

MMEngine's loaders call ``torch.load`` without ``weights_only`` (local files) or with
``weights_only=False`` (URLs, through ``torch.hub``), so its safety rests on torch's
default, which ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` turns off. After
:func:`use_safe_loading`, every read by ``--resume``, ``load_from``, ``init_cfg``
``Pretrained``, ``tools/test.py`` and ``tools/demo.py`` goes through
:func:`mmswin.checkpoint.read_checkpoint` (local files: weights-only, checksum verified)
or runs with ``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1`` (other schemes), unless
:func:`mmswin.checkpoint.io.trust_checkpoints` was called (``--trust-checkpoint``).
A file that cannot be loaded raises :class:`CheckpointFileError`, which the tools print
as one line.
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Any, Callable, Iterator

from mmswin.checkpoint.io import checkpoints_trusted, read_checkpoint, refusal_message
from mmswin.errors import CheckpointFileError, CheckpointFormatError

_SAFE_MARK = '_mmswin_weights_only'


def load_from_local_weights_only(filename: str, map_location: Any = None) -> Any:
    """MMEngine's local-file loader, through :func:`read_checkpoint`."""
    try:
        return read_checkpoint(filename, map_location=map_location)
    except FileNotFoundError as error:
        raise CheckpointFileError(f'{error}; fix the path (load_from, --resume, init_cfg.checkpoint)') from None
    except CheckpointFormatError as error:
        raise CheckpointFileError(f'checkpoint {error}') from None


def use_safe_loading() -> None:
    """Route MMEngine's checkpoint reads as the module docstring says (idempotent)."""
    from mmengine.runner.checkpoint import CheckpointLoader

    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local_weights_only, force=True)
    for prefix, loader in list(CheckpointLoader._schemes.items()):
        if prefix and not getattr(loader, _SAFE_MARK, False):
            CheckpointLoader.register_scheme(prefixes=prefix, loader=_weights_only(loader), force=True)


def _weights_only(loader: Callable) -> Callable:
    @functools.wraps(loader)
    def load(filename: str, map_location: Any = None) -> Any:
        with _forced_weights_only():
            try:
                return loader(filename, map_location)
            except Exception as error:  # name a refusal; let any other failure through as it was
                message = refusal_message(filename, error)
                if message is None:
                    raise
                raise CheckpointFileError(f'checkpoint {message}') from None

    setattr(load, _SAFE_MARK, True)
    return load


@contextlib.contextmanager
def _forced_weights_only() -> Iterator[None]:
    """``torch.load`` is weights-only inside, even where the caller passes False."""
    if checkpoints_trusted():
        yield
        return
    saved = {
        name: os.environ.get(name) for name in ('TORCH_FORCE_WEIGHTS_ONLY_LOAD', 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD')
    }
    os.environ['TORCH_FORCE_WEIGHTS_ONLY_LOAD'] = '1'
    os.environ.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)  # both set is an error in torch
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
