"""The tools on hostile, damaged and odd checkpoint files, a kill during a save, and --out,
end to end in subprocesses on the detection demo config."""

import os
import pickle
import resource
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from mmswin.datasets import generate_coco_shapes

from ..tools_runner import ROOT, config, quick_training, run_tool, train_on_tiny_set

DEMO = config('demo/mask_rcnn_swin_t_shapes.py')
QUICK = quick_training(4, 100, 2, 'default_hooks.checkpoint.max_keep_ckpts=-1')
TEST_QUICK = ['--cfg-options', 'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False']
# Every box kept: predictions of about 0.5 MB per image, for the full-disk case.
ALL_BOXES = ['model.test_cfg.rcnn.score_thr=0.0']


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A scratch folder with a tiny shapes set and a 4-iteration run in work/ (iter_2, iter_4)."""
    folder = tmp_path_factory.mktemp('safety')
    sizes = dict(num_train=4, num_val=2, size_range=(64, 80), seed=5)
    train_on_tiny_set(folder, DEMO, generate_coco_shapes, 'coco_shapes', QUICK, **sizes)
    return folder


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def one_error_line(result):
    """The tool's only ``error:`` line; fails if there is a traceback or none or more."""
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    return errors[0]


# --- 4. a payload never runs, whatever TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD says ----------------------

# A run that gets past the file (a regression) trains one iteration, not the demo's 800.
ONE_ITER = ['train_cfg.max_iters=1', 'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False']
PAYLOAD_RUNS = {
    'test': ['test.py', DEMO, 'evil.pth'],
    'demo': ['demo.py', 'data/coco_shapes/val2017', DEMO, 'evil.pth'],
    'resume': ['train.py', DEMO, '--resume', 'evil.pth', '--cfg-options', *ONE_ITER],
    'load_from': ['train.py', DEMO, '--cfg-options', 'load_from=evil.pth', *ONE_ITER],
    'pretrained': [
        'train.py',
        DEMO,
        '--cfg-options',
        'model.backbone.init_cfg.type=Pretrained',
        'model.backbone.init_cfg.checkpoint=evil.pth',
        *ONE_ITER,
    ],
    'convert': ['model_converters/convert_checkpoint.py', 'evil.pth', 'converted.pth'],
}


@pytest.mark.parametrize('path', sorted(PAYLOAD_RUNS))
def test_a_pickled_os_system_never_runs(trained, tmp_path, path):
    """With TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1, tools/test.py used to run the payload."""
    os.symlink(trained / 'data', tmp_path / 'data')
    marker = tmp_path / 'payload_ran'
    torch.save({'state_dict': {}, 'meta': {'x': Payload(marker)}}, tmp_path / 'evil.pth')
    tool, *args = PAYLOAD_RUNS[path]
    result = run_tool(tool, *args, cwd=str(tmp_path), env={'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD': '1'})
    assert not marker.exists(), 'the payload ran'
    assert result.returncode != 0
    line = one_error_line(result)
    assert "'evil.pth' was refused by the safe loader: loading it would call posix.system" in line, line
    assert 'damaged' not in line


# --- 5. one clear line for garbage, and for a directory named x.pth --------------------------------

ODD_FILE_RUNS = {
    'test': ['test.py', DEMO, 'x.pth'],
    'demo': ['demo.py', 'data/coco_shapes/val2017', DEMO, 'x.pth'],
    'resume': ['train.py', DEMO, '--resume', 'x.pth', '--cfg-options', *ONE_ITER],
    'load_from': ['train.py', DEMO, '--cfg-options', 'load_from=x.pth', *ONE_ITER],
}


@pytest.mark.parametrize('kind', ['random bytes', 'directory'])
@pytest.mark.parametrize('path', sorted(ODD_FILE_RUNS))
def test_random_bytes_and_a_directory_are_one_clear_line(trained, tmp_path, path, kind):
    os.symlink(trained / 'data', tmp_path / 'data')
    if kind == 'directory':
        (tmp_path / 'x.pth').mkdir()
    else:
        (tmp_path / 'x.pth').write_bytes(np.random.default_rng(0).bytes(50_000))
    tool, *args = ODD_FILE_RUNS[path]
    result = run_tool(tool, *args, cwd=str(tmp_path))
    assert result.returncode == 2
    line = one_error_line(result)
    if kind == 'directory':
        assert "'x.pth' is a directory, not a checkpoint file" in line, line
    else:
        assert "could not read 'x.pth' (50000 bytes) as a PyTorch checkpoint" in line and 'damaged' in line, line


# --- 3. a damaged checkpoint is named; --resume falls back ----------------------------------------


def zero_4kb_in_the_middle(path):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4096] = bytes(4096)
    path.write_bytes(bytes(data))


def test_test_tool_names_a_checkpoint_that_does_not_match_its_checksum(trained, tmp_path):
    for name in ('iter_4.pth', 'iter_4.pth.sha256'):
        shutil.copy(trained / 'work' / name, tmp_path / name)
    zero_4kb_in_the_middle(tmp_path / 'iter_4.pth')
    result = run_tool('test.py', DEMO, str(tmp_path / 'iter_4.pth'), cwd=str(trained))
    assert result.returncode == 2
    line = one_error_line(result)
    assert f"'{tmp_path / 'iter_4.pth'}' is damaged: its SHA-256" in line and 'differs from the one saved' in line


def test_resume_falls_back_past_a_damaged_newest_checkpoint(trained, tmp_path):
    shutil.copytree(trained / 'work', tmp_path / 'work', ignore=shutil.ignore_patterns('2*'))  # no log folders
    os.symlink(trained / 'data', tmp_path / 'data')
    zero_4kb_in_the_middle(tmp_path / 'work' / 'iter_4.pth')
    result = run_tool('train.py', DEMO, '--work-dir', 'work', '--resume', *QUICK, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert 'passing over iter_4.pth' in output and 'resuming from the older iter_2.pth' in output
    assert 'resumed epoch: 0, iter: 2' in output


# --- 2. a kill during a save with max_keep_ckpts=1 -----------------------------------------------

KILL_HOOK = '''
import os
import signal

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class KillDuringSave(Hook):
    """SIGKILLs the trainer in the middle of saving the checkpoint of iteration ``step``."""

    def __init__(self, step):
        self.step = step

    def before_save_checkpoint(self, runner, checkpoint):
        if runner.iter + 1 == self.step:
            os.kill(os.getpid(), signal.SIGKILL)
'''


@pytest.mark.slow  # about 40 s: two training runs (tests/engine/test_checkpoint_safety.py: the in-process case)
def test_a_kill_during_a_save_with_max_keep_ckpts_1_leaves_the_previous_checkpoint(trained, tmp_path, monkeypatch):
    """MMEngine deleted iter_2.pth before saving iter_3.pth, so the kill left no checkpoint and
    --resume ended in a FileNotFoundError traceback."""
    os.symlink(trained / 'data', tmp_path / 'data')
    (tmp_path / 'kill_during_save.py').write_text(KILL_HOOK)
    (tmp_path / 'killed.py').write_text(
        f'_base_ = [{DEMO!r}]\n'
        "custom_imports = dict(imports=['mmswin.models', 'kill_during_save'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='mmswin.IterSeedHook'), dict(type='KillDuringSave', step=3)]\n"
    )
    monkeypatch.setenv('PYTHONPATH', str(tmp_path))
    options = [o for o in QUICK if not o.startswith('default_hooks.checkpoint')] + [
        'default_hooks.checkpoint.interval=1',
        'default_hooks.checkpoint.max_keep_ckpts=1',
    ]
    killed = run_tool('train.py', 'killed.py', '--work-dir', 'work', *options, cwd=str(tmp_path))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert sorted(name for name in os.listdir(tmp_path / 'work') if '.pth' in name) == [
        'iter_2.pth',
        'iter_2.pth.sha256',
    ]
    resumed = run_tool('train.py', DEMO, '--work-dir', 'work', '--resume', *options, cwd=str(tmp_path))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    output = resumed.stdout + resumed.stderr
    assert 'resumed epoch: 0, iter: 2' in output and 'which ended without releasing it' in output
    assert sorted(name for name in os.listdir(tmp_path / 'work') if '.pth' in name) == [
        'iter_4.pth',
        'iter_4.pth.sha256',
    ]


# --- 4. --trust-checkpoint ------------------------------------------------------------------------


def test_only_trust_checkpoint_loads_a_checkpoint_holding_objects(trained, tmp_path):
    checkpoint = torch.load(trained / 'work' / 'iter_4.pth', weights_only=True)
    checkpoint['meta']['note'] = np.arange(3)  # what another tool's checkpoint may hold
    torch.save(checkpoint, tmp_path / 'objects.pth')
    refused = run_tool('test.py', DEMO, str(tmp_path / 'objects.pth'), *TEST_QUICK, cwd=str(trained))
    assert refused.returncode == 2
    assert 'holds Python objects besides tensors' in one_error_line(refused) and '--trust-checkpoint' in refused.stderr
    trusted = run_tool(
        'test.py', DEMO, str(tmp_path / 'objects.pth'), '--trust-checkpoint', *TEST_QUICK, cwd=str(trained)
    )
    assert trusted.returncode == 0, trusted.stderr[-3000:]
    assert 'test metrics: coco/bbox_mAP=' in trusted.stdout


# --- 8. --out -------------------------------------------------------------------------------------


def test_out_is_written_after_the_metrics(trained, tmp_path):
    out = tmp_path / 'preds.pkl'
    result = run_tool('test.py', DEMO, 'work/iter_4.pth', '--out', str(out), *TEST_QUICK, cwd=str(trained))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.index('test metrics: coco/bbox_mAP=') < result.stdout.index(f'predictions written to {out}')
    with open(out, 'rb') as file:
        assert len(pickle.load(file)) == 2  # one prediction per validation image
    assert os.listdir(tmp_path) == ['preds.pkl']


def test_a_full_disk_while_writing_out_keeps_the_metrics_and_leaves_no_file(trained, tmp_path):
    """Files are capped at 64 KB (RLIMIT_FSIZE; the predictions are larger), as a full disk
    would stop the write. Before: a traceback, no metrics and a 64 KB preds.pkl."""
    out = tmp_path / 'preds.pkl'
    env = dict(os.environ, OMP_NUM_THREADS='2', PYTHONPATH=ROOT, PYTHONDONTWRITEBYTECODE='1')

    def cap_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools', 'test.py'), DEMO, 'work/iter_4.pth', '--out', str(out)]
        + TEST_QUICK
        + ALL_BOXES,
        cwd=trained,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=cap_file_size,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert 'test metrics: coco/bbox_mAP=' in result.stdout
    line = one_error_line(result)
    assert f"--out '{out}': writing the predictions failed (File too large); nothing was written there" in line
    assert os.listdir(tmp_path) == []
