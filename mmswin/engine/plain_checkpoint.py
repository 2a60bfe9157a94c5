"""Checkpoints that load with ``torch.load(weights_only=True)``.

torch >= 2.6 loads pickles in weights-only mode by default, and MMEngine's training
checkpoints do not load that way: the message hub pickles ``HistoryBuffer`` objects
(whose class-level statistics methods pickle through ``builtins.getattr``) and numpy
arrays. Allow-listing ``getattr`` would let any checkpoint run code, so instead this
hook stores those objects as plain tensors and dicts when saving, and rebuilds them
after loading. The result: ``--resume`` works under the safe loader, and a checkpoint
that carries any other callable is refused by torch, as it should be.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer

from mmswin.registry import HOOKS

HISTORY_TAG = '__mmswin_history_buffer__'
NDARRAY_TAG = '__mmswin_ndarray__'


def to_plain(value: Any) -> Any:
    """Replace HistoryBuffers, numpy arrays and numpy scalars by weights-only-safe data."""
    if isinstance(value, HistoryBuffer):
        log_history, count_history = value.data
        return {
            HISTORY_TAG: True,
            'log_history': torch.from_numpy(np.asarray(log_history, dtype=np.float64)),
            'count_history': torch.from_numpy(np.asarray(count_history, dtype=np.float64)),
            'max_length': int(value.max_length),
        }
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return [to_plain(v) for v in value.tolist()]
        return {NDARRAY_TAG: torch.from_numpy(np.ascontiguousarray(value))}
    if isinstance(value, np.generic):
        return value.item()
    return _map_items(value, to_plain)


def from_plain(value: Any) -> Any:
    """Inverse of :func:`to_plain`."""
    if isinstance(value, dict):
        if value.get(HISTORY_TAG) is True:
            return HistoryBuffer(
                value['log_history'].numpy().tolist(), value['count_history'].numpy().tolist(), value['max_length']
            )
        if set(value) == {NDARRAY_TAG}:
            return value[NDARRAY_TAG].numpy()
    return _map_items(value, from_plain)


PLAIN_KEYS = ('meta', 'message_hub', 'param_schedulers')


@HOOKS.register_module()
class PlainCheckpointHook(Hook):
    """Save MMEngine checkpoints as weights-only-safe data; restore them after loading."""

    priority = 'VERY_LOW'  # runs after every hook that adds to the checkpoint

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in PLAIN_KEYS:
            if key in checkpoint:
                checkpoint[key] = to_plain(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in PLAIN_KEYS:
            if key in checkpoint:
                checkpoint[key] = from_plain(checkpoint[key])


def _map_items(value: Any, convert) -> Any:
    """A dict (of the same type), list or tuple with ``convert`` applied to every item;
    anything else as it is."""
    if isinstance(value, dict):
        return type(value)((key, convert(item)) for key, item in value.items())
    if isinstance(value, list):
        return [convert(item) for item in value]
    if isinstance(value, tuple):
        return tuple(convert(item) for item in value)
    return value
