"""DDP on CPU processes (gloo): tools/dist_train.sh, gradient equivalence, frozen stages and
checkpointing without unused parameters, and a dying rank. Marked ``dist``: `make test-dist`."""

import os
import subprocess
import sys
import time

import pytest
import torch

from mmswin.datasets import generate_ade_shapes, generate_coco_shapes

from .tools_runner import ROOT, config

pytestmark = pytest.mark.dist
WORKER = os.path.join(ROOT, 'tests', 'ddp_worker.py')


def torchrun(*args, timeout=300, port=29611):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    command = [
        sys.executable,
        '-m',
        'torch.distributed.run',
        '--nproc_per_node',
        '2',
        '--master_port',
        str(port),
        *args,
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)


def test_ddp_step_equals_single_process_batch(tmp_path):
    from .ddp_worker import backbone_loss, batch_of_two, make_model

    result = torchrun(WORKER, 'step', str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    backbone_loss(model(batch_of_two())).backward()
    optimizer.step()
    distributed = torch.load(tmp_path / 'step.pth', weights_only=True)
    for name, value in model.state_dict().items():
        assert torch.allclose(distributed[name], value, atol=1e-5), name


@pytest.mark.parametrize('mode', ['frozen', 'cp', 'frozen_cp'])
def test_frozen_stages_and_checkpointing_train_under_ddp(tmp_path, mode):
    result = torchrun(WORKER, mode, str(tmp_path), port=29621 + len(mode))
    assert result.returncode == 0, result.stderr[-3000:]
    trained = torch.load(tmp_path / f'{mode}.pth', weights_only=True)
    from .ddp_worker import make_model

    initial = make_model().state_dict()
    for name in trained:
        changed = not torch.equal(trained[name], initial[name])
        frozen = 'frozen' in mode and name.startswith(('patch_embed.', 'stages.0.', 'norm0.'))
        assert changed != frozen, name


def test_a_dying_rank_fails_the_job_quickly(tmp_path):
    start = time.monotonic()
    result = torchrun(WORKER, 'die', str(tmp_path), timeout=180, port=29641)
    assert result.returncode != 0
    assert time.monotonic() - start < 120
    assert 'exitcode' in result.stderr and '3' in result.stderr


def dist_train(config_path, folder, *options, port):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=sys.executable, PORT=str(port))
    return subprocess.run(
        [
            'bash',
            os.path.join(ROOT, 'tools', 'dist_train.sh'),
            config_path,
            '2',
            '--work-dir',
            'work',
            '--cfg-options',
            *options,
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


COMMON = [
    'default_hooks.logger.interval=1',
    'train_dataloader.batch_size=1',
    'train_dataloader.num_workers=0',
    'val_dataloader.num_workers=0',
    'val_dataloader.batch_size=1',
    'randomness.seed=0',
]


def check_two_rank_run(result, folder, checkpoint, per_process=1):
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert f'total batch size: {2 * per_process} ({per_process} per process x 2 processes)' in output
    assert os.path.isfile(os.path.join(folder, 'work', checkpoint))
    assert sorted(os.listdir(os.path.join(folder, 'work'))).count(checkpoint) == 1


def test_dist_train_detection_demo_on_two_cpu_processes(tmp_path):
    generate_coco_shapes(str(tmp_path / 'data' / 'coco_shapes'), num_train=4, num_val=2, size_range=(64, 80))
    result = dist_train(
        config('demo/mask_rcnn_swin_t_shapes.py'),
        str(tmp_path),
        'train_cfg.max_iters=3',
        'train_cfg.val_interval=3',
        'default_hooks.checkpoint.interval=3',
        *COMMON,
        port=29651,
    )
    check_two_rank_run(result, str(tmp_path), 'iter_3.pth')


def test_dist_train_segmentation_demo_on_two_cpu_processes(tmp_path):
    generate_ade_shapes(str(tmp_path / 'data' / 'ade_shapes'), num_train=4, num_val=2, size_range=(64, 80))
    # BN (converted from SyncBN on CPU) needs more than one value per channel: 2 images per process.
    result = dist_train(
        config('demo/upernet_swin_t_shapes.py'),
        str(tmp_path),
        'train_cfg.max_iters=3',
        'train_cfg.val_interval=3',
        'default_hooks.checkpoint.interval=3',
        *COMMON,
        'train_dataloader.batch_size=2',
        port=29661,
    )
    check_two_rank_run(result, str(tmp_path), 'iter_3.pth', per_process=2)
    assert 'SyncBN -> BN' in result.stdout + result.stderr
