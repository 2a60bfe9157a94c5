"""tools/train.py and tools/test.py on the detection demo config, end to end in subprocesses."""

import glob
import json
import os

import pytest

from mmswin.datasets import generate_coco_shapes

from ..tools_runner import config, quick_training, run_tool, train_on_tiny_set

DEMO = config('demo/mask_rcnn_swin_t_shapes.py')
# A few iterations on a tiny set: enough to exercise train -> checkpoint -> test -> resume.
QUICK = quick_training(4, 4, 2, 'val_dataloader.batch_size=2')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A scratch folder with a tiny shapes set and a 4-iteration training run in work/."""
    folder = tmp_path_factory.mktemp('det')
    sizes = dict(num_train=6, num_val=4, size_range=(64, 90), seed=1)
    return folder, train_on_tiny_set(folder, DEMO, generate_coco_shapes, 'coco_shapes', QUICK, **sizes)


def test_train_writes_checkpoints_and_a_log(trained):
    folder, result = trained
    assert os.path.isfile(folder / 'work' / 'iter_2.pth') and os.path.isfile(folder / 'work' / 'iter_4.pth')
    logs = glob.glob(str(folder / 'work' / '*' / 'vis_data' / 'scalars.json'))
    assert logs, 'no scalar log written'
    with open(logs[0]) as f:
        losses = [json.loads(line) for line in f if '"loss"' in line]
    assert len(losses) == 4 and all(entry['loss'] > 0 for entry in losses)
    assert 'eta' in result.stdout + result.stderr


def test_test_tool_prints_coco_metrics(trained):
    folder, _ = trained
    result = run_tool(
        'test.py',
        DEMO,
        'work/iter_4.pth',
        '--work-dir',
        'work_test',
        '--cfg-options',
        'test_dataloader.num_workers=0',
        cwd=str(folder),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'coco/bbox_mAP=' in result.stdout and 'coco/segm_mAP=' in result.stdout


def test_resume_continues_from_the_saved_iteration(trained):
    folder, _ = trained
    options = [o if not o.startswith('train_cfg.max_iters') else 'train_cfg.max_iters=6' for o in QUICK]
    result = run_tool('train.py', DEMO, '--work-dir', 'work', '--resume', *options, cwd=str(folder))
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'resumed epoch: 0, iter: 4' in result.stdout + result.stderr
    assert os.path.isfile(folder / 'work' / 'iter_6.pth')


def test_missing_dataset_is_one_clear_line(tmp_path):
    result = run_tool('train.py', config('mask_rcnn_swin_t.py'), cwd=str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith('error: data set not found') and 'data/coco/' in result.stderr
    assert 'make demo' in result.stderr and 'Traceback' not in result.stderr


def test_missing_pretrained_checkpoint_is_one_clear_line(trained):
    folder, _ = trained
    result = run_tool(
        'train.py',
        DEMO,
        '--cfg-options',
        'model.backbone.init_cfg.type=Pretrained',
        'model.backbone.init_cfg.checkpoint=weights/swin_t.pth',
        cwd=str(folder),
    )
    assert result.returncode == 2
    assert 'weights/swin_t.pth' in result.stderr and 'model.backbone.init_cfg.checkpoint' in result.stderr
    assert 'Traceback' not in result.stderr


def test_missing_test_checkpoint_is_one_clear_line(trained):
    folder, _ = trained
    result = run_tool('test.py', DEMO, 'work/nope.pth', cwd=str(folder))
    assert result.returncode == 2 and "checkpoint not found: 'work/nope.pth'" in result.stderr
