"""tools/train.py and tools/test.py on the segmentation demo config (SyncBN on one CPU process)."""

import os

import pytest

from mmswin.datasets import generate_ade_shapes

from ..tools_runner import config, quick_training, run_tool, train_on_tiny_set

DEMO = config('demo/upernet_swin_t_shapes.py')
QUICK = quick_training(3, 3, 3, 'val_dataloader.persistent_workers=False')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp('seg')
    sizes = dict(num_train=4, num_val=2, size_range=(64, 90), seed=1)
    return folder, train_on_tiny_set(folder, DEMO, generate_ade_shapes, 'ade_shapes', QUICK, **sizes)


def test_syncbn_config_trains_on_one_cpu_process(trained):
    folder, result = trained
    output = result.stdout + result.stderr
    assert 'SyncBN -> BN' in output and 'model.decode_head.norm_cfg' in output
    assert os.path.isfile(folder / 'work' / 'iter_3.pth')
    assert 'mIoU' in output


def test_test_tool_prints_miou(trained):
    folder, _ = trained
    result = run_tool(
        'test.py',
        DEMO,
        'work',
        '--work-dir',
        'work_test',
        '--cfg-options',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
        cwd=str(folder),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'mIoU=' in result.stdout


def test_missing_ade20k_is_one_clear_line(tmp_path):
    result = run_tool('train.py', config('upernet_swin_t.py'), cwd=str(tmp_path))
    assert result.returncode == 2 and 'data/ade/ADEChallengeData2016' in result.stderr
    assert 'make demo-seg' in result.stderr and 'Traceback' not in result.stderr
