"""Training checkpoints load with torch's safe weights-only loader; foreign code is refused."""

import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from mmswin.engine.plain_checkpoint import PlainCheckpointHook, from_plain, to_plain


def message_hub_state():
    buffer = HistoryBuffer()
    for value in (1.0, 2.5, 4.0):
        buffer.update(value)
    return dict(
        log_scalars={'train/loss': buffer},
        runtime_info={'iter': np.int64(7), 'lr': np.array([0.1, 0.2])},
        resumed_keys={'train/loss': True},
    )


def test_raw_mmengine_state_is_refused_by_the_safe_loader(tmp_path):
    path = tmp_path / 'raw.pth'
    torch.save({'message_hub': message_hub_state()}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


def test_plain_checkpoint_round_trips_through_weights_only_load(tmp_path):
    checkpoint = {
        'meta': {'iter': np.int64(3), 'seed': 0},
        'message_hub': message_hub_state(),
        'state_dict': {'w': torch.ones(2)},
    }
    PlainCheckpointHook().before_save_checkpoint(None, checkpoint)
    path = tmp_path / 'plain.pth'
    torch.save(checkpoint, path)
    loaded = torch.load(path, weights_only=True)
    PlainCheckpointHook().after_load_checkpoint(None, loaded)
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buffer, HistoryBuffer)
    assert buffer.mean() == pytest.approx(2.5) and buffer.current() == 4.0
    assert np.array_equal(loaded['message_hub']['runtime_info']['lr'], np.array([0.1, 0.2]))
    assert loaded['meta']['iter'] == 3


def test_checkpoint_carrying_a_callable_is_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': {'hook': os.system}}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


def test_to_plain_keeps_plain_data_unchanged():
    data = {'a': [1, 2.0, 'x'], 'b': (torch.zeros(1), None)}
    out = from_plain(to_plain(data))
    assert out['a'] == [1, 2.0, 'x'] and torch.equal(out['b'][0], torch.zeros(1)) and out['b'][1] is None
