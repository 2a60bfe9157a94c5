"""Convert a checkpoint file once: any public Swin format in, an mmswin checkpoint out.

The file written loads with ``torch.load(weights_only=True)`` and has its checksum beside
it (``DST.sha256``); ``tools/model_converters/convert_checkpoint.py`` is its command line.
"""

from __future__ import annotations

import os

from mmswin.atomic import atomic_file

from .digest import file_digest, write_digest
from .formats import convert_state_dict
from .io import read_checkpoint
from .report import describe_arch
from .resize import resize_relative_position_bias_table, table_window_size


def save_atomically(payload: dict, dst: str) -> None:
    """``torch.save`` into a hidden file beside DST, synced, then renamed over DST after its
    checksum file (``DST.sha256``) is written: a failed or interrupted write (a full disk)
    leaves no half-written DST, and an existing DST (even SRC itself) is replaced only by
    a complete file."""
    import torch

    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    with atomic_file(dst) as partial:
        torch.save(payload, partial)
        write_digest(dst, file_digest(partial))


def convert_checkpoint_file(
    src: str, dst: str, window_size: int | None = None, prefix: str | None = None, trusted: bool = False
) -> str:
    """Write ``dst`` from ``src`` (a checkpoint in any format :func:`convert_state_dict`
    knows; ``trusted``: read it as a full pickle), optionally with the relative position
    bias tables resized to ``window_size``, and return a one-line summary. Raises an
    ``OSError`` naming DST if writing fails (nothing is left at DST then)."""

    converted = convert_state_dict(read_checkpoint(src, trusted=trusted), prefix=prefix)
    state_dict = converted.state_dict
    resized = 0
    if window_size is not None:
        for key, tensor in state_dict.items():
            if key.endswith('relative_position_bias_table') and table_window_size(tensor) != window_size:
                state_dict[key] = resize_relative_position_bias_table(tensor, window_size)
                resized += 1
    arch = describe_arch({key: tuple(tensor.shape) for key, tensor in state_dict.items()})
    # Plain str/int values only, so the file loads with torch.load(weights_only=True).
    meta = dict(mmswin_converted_from=converted.description, source_file=os.path.basename(src), arch=arch)
    try:
        save_atomically(dict(state_dict=state_dict, meta=meta), dst)
    except OSError as error:
        raise OSError(f'DST {dst!r}: writing failed ({error.strerror or error}); nothing was written') from error
    parts = [f'wrote {dst}: {len(state_dict)} tensors converted from {converted.description}', f'arch: {arch}']
    if resized:
        parts.append(f'resized {resized} relative position bias tables to window {window_size}')
    if converted.ignored:
        parts.append(
            'dropped by design: '
            + ', '.join(f'{reason} ({count})' for reason, count in sorted(converted.ignored.items()))
        )
    return '; '.join(parts)
