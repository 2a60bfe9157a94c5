"""Checkpoints are never torn or lost, prove they are whole, and a payload never runs.

Most cases train a two-parameter model with :class:`AtomicCheckpointRunner` in-process
(about a second); the tools' behaviour is checked in subprocesses in
tests/tools/test_checkpoint_tools_safety.py.
"""

import hashlib
import itertools
import os
from pathlib import Path

import pytest
import torch
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

from mmswin.atomic import atomic_file
from mmswin.checkpoint.io import read_checkpoint, trust_checkpoints, verify_checkpoint_file
from mmswin.engine.atomic_runner import AtomicCheckpointRunner
from mmswin.engine.plain_checkpoint import PlainCheckpointHook
from mmswin.engine.resume import newest_complete_checkpoint, resume_checkpoint
from mmswin.engine.safe_loading import use_safe_loading
from mmswin.errors import CheckpointDigestError, CheckpointFileError, CheckpointFormatError, PreflightError

_runs = itertools.count()


class SmallModel(BaseModel):
    """Two weights to train, and a 256 KB table, so that a checkpoint has a middle to damage."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 1)
        self.register_buffer('table', torch.randn(64, 1024))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(torch.stack(inputs))  # MMEngine's default collate gives a list
        return {'loss': out.pow(2).mean()} if mode == 'loss' else out


class FailDuringSave(Hook):
    """Dies inside the save of one checkpoint, as a kill or a full disk would."""

    def __init__(self, step):
        self.step = step

    def before_save_checkpoint(self, runner, checkpoint):
        if runner.iter + 1 == self.step:
            raise OSError(28, 'No space left on device')


def toy_runner(work_dir, max_iters=3, max_keep_ckpts=-1, hooks=(), checkpoint=(), **kwargs):
    torch.manual_seed(0)
    data = [dict(inputs=torch.randn(2)) for _ in range(4)]
    return AtomicCheckpointRunner(
        model=SmallModel(),
        work_dir=str(work_dir),
        experiment_name=f'toy{next(_runs)}',
        train_dataloader=dict(dataset=data, sampler=dict(type='DefaultSampler', shuffle=False), batch_size=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(
            checkpoint=dict(
                dict(type='CheckpointHook', interval=1, by_epoch=False, max_keep_ckpts=max_keep_ckpts),
                **dict(checkpoint),
            )
        ),
        custom_hooks=[dict(type=PlainCheckpointHook), *hooks],
        default_scope='mmengine',
        log_level='WARNING',
        **{'train_cfg': dict(by_epoch=False, max_iters=max_iters), **kwargs},
    )


def zero_4kb_in_the_middle(path):
    data = bytearray(Path(path).read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = bytes(4096)
    Path(path).write_bytes(bytes(data))


# --- 1. unique partial files -------------------------------------------------------------


def test_two_writers_of_one_path_never_share_a_partial_file(tmp_path):
    """The second writer's rename must not publish the first writer's half-written bytes."""
    target = tmp_path / 'iter_2.pth'
    with atomic_file(str(target)) as first:
        Path(first).write_bytes(b'A' * 1000)  # half of the first writer's file
        with atomic_file(str(target)) as second:
            assert second != first
            Path(second).write_bytes(b'B' * 2000)
        assert target.read_bytes() == b'B' * 2000
        Path(first).write_bytes(b'A' * 3000)
    assert target.read_bytes() == b'A' * 3000
    assert os.listdir(tmp_path) == ['iter_2.pth']


def test_what_a_killed_save_left_is_removed_when_the_next_run_starts(tmp_path):
    partial = tmp_path / '.iter_4.pth.0123456789abcdef.partial'
    partial.write_bytes(b'PK\x03\x04 half a checkpoint')
    orphan = tmp_path / 'iter_4.pth.sha256'  # its checkpoint was never renamed into place
    orphan.write_text('0' * 64 + '  iter_4.pth\n')
    kept = tmp_path / 'iter_2.pth.sha256'
    (tmp_path / 'iter_2.pth').write_bytes(b'x')
    kept.write_text('1' * 64 + '  iter_2.pth\n')
    toy_runner(tmp_path)
    assert not partial.exists() and not orphan.exists() and kept.exists()


# --- 2. no checkpoint deleted before its successor is complete ------------------------------


def test_a_failed_save_keeps_the_checkpoint_it_would_replace(tmp_path):
    """max_keep_ckpts=1 and the save of iter_3 dies: iter_2 is still there (MMEngine deletes
    it first), with its checksum, and resuming continues from it."""
    with pytest.raises(OSError, match='No space left'):
        toy_runner(tmp_path, max_keep_ckpts=1, hooks=[FailDuringSave(3)]).train()
    assert _checkpoint_files(tmp_path) == ['iter_2.pth', 'iter_2.pth.sha256']
    resumed = toy_runner(tmp_path, max_iters=4, max_keep_ckpts=1, resume=True)
    resumed.train()
    assert resumed.iter == 4
    assert _checkpoint_files(tmp_path) == ['iter_4.pth', 'iter_4.pth.sha256']


class RisingScore(BaseMetric):
    """A score that improves at every validation, so each one saves a new best checkpoint."""

    def process(self, data_batch, data_samples):
        self.results.append(0)

    def compute_metrics(self, results):
        self.calls = getattr(self, 'calls', 0) + 1
        return {'score': float(self.calls)}


def test_a_failed_save_of_a_new_best_keeps_the_previous_best(tmp_path):
    """MMEngine removes the previous best before saving the new one."""
    data = [dict(inputs=torch.randn(2)) for _ in range(2)]
    runner = toy_runner(
        tmp_path,
        hooks=[FailDuringSave(3)],  # the best after iteration 2
        checkpoint=dict(interval=100, save_best='score', rule='greater'),
        val_dataloader=dict(dataset=data, sampler=dict(type='DefaultSampler', shuffle=False), batch_size=2),
        val_cfg=dict(),
        val_evaluator=dict(type=RisingScore),
        train_cfg=dict(by_epoch=False, max_iters=3, val_interval=1),
    )
    with pytest.raises(OSError, match='No space left'):
        runner.train()
    assert _checkpoint_files(tmp_path) == ['best_score_iter_1.pth', 'best_score_iter_1.pth.sha256']


def test_resume_without_a_usable_checkpoint_starts_fresh_with_a_warning(tmp_path, capfd):
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_9.pth'))  # gone
    runner = toy_runner(tmp_path, max_iters=1, resume=True)
    runner.train()
    assert runner.iter == 1
    warning = f"no complete checkpoint in '{tmp_path}' to resume from; training starts from scratch"
    assert warning in capfd.readouterr().out


# --- 3. checksums --------------------------------------------------------------------------


def test_every_saved_checkpoint_has_a_matching_sha256_file(tmp_path):
    toy_runner(tmp_path, max_iters=2).train()
    for name in ('iter_1.pth', 'iter_2.pth'):
        digest = hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        assert (tmp_path / f'{name}.sha256').read_text() == f'{digest}  {name}\n'  # sha256sum -c format


def test_4kb_of_zeros_in_a_checkpoint_is_named_and_resume_falls_back(tmp_path, capfd):
    toy_runner(tmp_path, max_iters=3).train()
    newest = tmp_path / 'iter_3.pth'
    read_checkpoint(str(newest))  # loads before the damage
    zero_4kb_in_the_middle(newest)
    with pytest.raises(CheckpointDigestError, match=r"'.*iter_3.pth' is damaged: its SHA-256 .* differs"):
        verify_checkpoint_file(str(newest))
    with pytest.raises(PreflightError, match='cannot resume: .*iter_3.pth.* is damaged'):
        resume_checkpoint(str(newest))
    capfd.readouterr()
    assert newest_complete_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_2.pth')
    warning = capfd.readouterr().out
    assert 'passing over iter_3.pth' in warning and 'resuming from the older iter_2.pth' in warning
    resumed = toy_runner(tmp_path, max_iters=4, resume=True)
    resumed.train()
    assert resumed.iter == 4


def test_a_checkpoint_without_a_checksum_file_still_loads(tmp_path):
    path = tmp_path / 'foreign.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}}, path)
    assert torch.equal(read_checkpoint(str(path))['state_dict']['w'], torch.ones(2))


# --- 4. weights-only whatever the environment says -------------------------------------------


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


@pytest.fixture
def payload(tmp_path, monkeypatch):
    """A checkpoint that runs a shell command when unpickled, and the file that command makes."""
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    marker = tmp_path / 'payload_ran'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'linear.weight': torch.zeros(1, 2)}, 'meta': {'x': Payload(marker)}}, path)
    yield path
    assert not marker.exists(), 'the payload ran'


def test_mmengine_local_loads_are_weights_only_under_force_no_weights_only(payload):
    use_safe_loading()
    with pytest.raises(CheckpointFileError, match='refused by the safe loader: loading it would call posix.system'):
        _load_checkpoint(str(payload), map_location='cpu')


def test_resume_and_load_from_are_weights_only(payload, tmp_path):
    for options in (dict(resume=True, load_from=str(payload)), dict(load_from=str(payload))):
        with pytest.raises(CheckpointFileError, match='posix.system'):
            toy_runner(tmp_path / f'run{len(options)}', max_iters=1, **options).train()


def test_other_schemes_are_forced_weights_only(payload, monkeypatch):
    """A loader that passes weights_only=False itself (as torch.hub does for URLs) is overridden."""

    def load_from_fake(name, map_location=None):
        return torch.load(name[len('fake://') :], weights_only=False)

    monkeypatch.setattr(CheckpointLoader, '_schemes', dict(CheckpointLoader._schemes))  # restored afterwards
    CheckpointLoader.register_scheme('fake://', load_from_fake)
    use_safe_loading()
    with pytest.raises(CheckpointFileError, match='posix.system'):
        CheckpointLoader.load_checkpoint(f'fake://{payload}')


def test_only_trust_checkpoints_loads_a_full_pickle(tmp_path):
    path = tmp_path / 'objects.pth'
    torch.save({'state_dict': {}, 'meta': {'when': Path('/x')}}, path)
    with pytest.raises(CheckpointFormatError, match='--trust-checkpoint'):
        read_checkpoint(str(path))
    trust_checkpoints()
    try:
        verify_checkpoint_file(str(path))
        assert read_checkpoint(str(path))['meta']['when'] == Path('/x')
    finally:
        trust_checkpoints(False)


# --- 5. one clear line ------------------------------------------------------------------------


def test_a_blocked_global_is_told_apart_from_damage(payload, tmp_path):
    with pytest.raises(CheckpointFormatError) as refused:
        read_checkpoint(str(payload))
    assert 'posix.system' in str(refused.value) and 'damaged' not in str(refused.value)
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(bytes(range(256)) * 20)
    with pytest.raises(CheckpointFormatError, match='is damaged or truncated') as damaged:
        verify_checkpoint_file(str(garbage))
    assert 'refused' not in str(damaged.value)


def test_a_directory_named_like_a_checkpoint_is_named_as_a_directory(tmp_path):
    folder = tmp_path / 'x.pth'
    folder.mkdir()
    with pytest.raises(CheckpointFormatError, match="'.*x.pth' is a directory, not a checkpoint file"):
        verify_checkpoint_file(str(folder))
    with pytest.raises(PreflightError, match="'.*x.pth' is a directory, not a checkpoint file"):
        resume_checkpoint(str(folder))


def _checkpoint_files(work_dir):
    """Checkpoints, their checksums and any partial file in the work dir."""
    return sorted(name for name in os.listdir(work_dir) if '.pth' in name)
