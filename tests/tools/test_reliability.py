"""Reliability: kill-and-resume, atomic checkpoints, clear errors for bad configs, edge sizes."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmengine.config import Config

from mmswin.datasets import generate_coco_shapes
from mmswin.engine.config_checks import check_model_config
from mmswin.engine.resume import newest_complete_checkpoint, resume_checkpoint
from mmswin.errors import PreflightError

from ..tools_runner import ROOT, config, run_tool

DEMO = config('demo/mask_rcnn_swin_t_shapes.py')
DETERMINISTIC = [
    '--cfg-options',
    'train_cfg.max_iters=6',
    'train_cfg.val_interval=100',
    'default_hooks.checkpoint.interval=2',
    'default_hooks.checkpoint.max_keep_ckpts=-1',
    'default_hooks.logger.interval=1',
    'train_dataloader.batch_size=2',
    'train_dataloader.num_workers=1',
    'randomness.seed=0',
    'randomness.deterministic=True',
]


def losses(work_dir):
    """iteration -> loss, from every run's scalar log in the work dir."""
    found = {}
    for log in glob.glob(os.path.join(work_dir, '*', 'vis_data', 'scalars.json')):
        with open(log) as f:
            for line in f:
                entry = json.loads(line)
                if 'loss' in entry:
                    found[entry['iter']] = entry['loss']
    return found


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    generate_coco_shapes(str(tmp_path / 'data' / 'coco_shapes'), num_train=8, num_val=2, size_range=(64, 90), seed=2)
    reference = run_tool('train.py', DEMO, '--work-dir', 'reference', *DETERMINISTIC, cwd=str(tmp_path))
    assert reference.returncode == 0, reference.stderr[-3000:]

    env = dict(os.environ, OMP_NUM_THREADS='2', PYTHONPATH=ROOT)
    crashed = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, 'tools', 'train.py'), DEMO, '--work-dir', 'crashed', *DETERMINISTIC],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not os.path.exists(tmp_path / 'crashed' / 'iter_2.pth') and time.monotonic() < deadline:
        assert crashed.poll() is None, 'training ended before it could be killed'
        time.sleep(0.2)
    os.killpg(crashed.pid, signal.SIGKILL)  # the trainer and its data-loader worker, as a machine crash would
    crashed.wait()
    assert crashed.returncode == -signal.SIGKILL

    resumed = run_tool('train.py', DEMO, '--work-dir', 'crashed', '--resume', *DETERMINISTIC, cwd=str(tmp_path))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    output = resumed.stdout + resumed.stderr
    assert 'resumed epoch: 0, iter: 2' in output or 'resumed epoch: 0, iter: 4' in output
    expected, actual = losses(tmp_path / 'reference'), losses(tmp_path / 'crashed')
    assert sorted(expected) == [1, 2, 3, 4, 5, 6] and 6 in actual
    for iteration in (5, 6):
        assert actual[iteration] == pytest.approx(expected[iteration], rel=1e-4, abs=1e-5), iteration


def test_atomic_save_leaves_no_partial_file(tmp_path, monkeypatch):
    from mmengine.runner import Runner

    from mmswin.engine.atomic_runner import AtomicCheckpointRunner

    def dies_while_writing(self, out_dir, filename, *args, **kwargs):
        with open(os.path.join(out_dir, filename), 'wb') as f:
            f.write(b'PK\x03\x04 half a checkpoint')
        raise OSError('No space left on device')

    monkeypatch.setattr(Runner, 'save_checkpoint', dies_while_writing)
    runner = AtomicCheckpointRunner.__new__(AtomicCheckpointRunner)
    with pytest.raises(OSError):
        runner.save_checkpoint(str(tmp_path), 'iter_4.pth')
    assert os.listdir(tmp_path) == []


def test_resume_picks_the_newest_complete_checkpoint(tmp_path):
    torch.save({'meta': {}}, tmp_path / 'iter_2.pth')
    torch.save({'meta': {}}, tmp_path / 'iter_4.pth')
    full = (tmp_path / 'iter_4.pth').read_bytes()
    (tmp_path / 'iter_6.pth').write_bytes(full[: len(full) // 2])  # killed mid-write by an older tool
    assert newest_complete_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_4.pth')
    with pytest.raises(PreflightError, match='iter_6.pth'):
        resume_checkpoint(str(tmp_path / 'iter_6.pth'))


def test_corrupt_resume_checkpoint_is_named_in_one_line(tmp_path):
    (tmp_path / 'iter_2.pth').write_text('<html>Not Found</html>')
    result = run_tool('train.py', DEMO, '--work-dir', 'w', '--resume', str(tmp_path / 'iter_2.pth'), cwd=str(tmp_path))
    assert result.returncode == 2 and 'iter_2.pth' in result.stderr and 'Traceback' not in result.stderr


def demo_cfg(**backbone):
    cfg = Config.fromfile(DEMO)
    cfg.model.backbone.update(backbone)
    return cfg


def test_misspelt_backbone_argument_suggests_the_right_one():
    with pytest.raises(PreflightError, match="'drop_pth_rate'.*did you mean 'drop_path_rate'"):
        check_model_config(demo_cfg(drop_pth_rate=0.1))


@pytest.mark.parametrize(
    'argument, fix',
    [
        (dict(embed_dims=96), r'arch=dict\(embed_dims=96'),
        (dict(convert_weights=True), 'converted on load'),
        (dict(strides=(4, 2, 2, 2)), 'patch merging'),
    ],
)
def test_mmdetection_swin_arguments_are_translated(argument, fix):
    """A config moved over from MMDetection's SwinTransformer names the argument and says
    how SwinBackbone takes it."""
    name = next(iter(argument))
    with pytest.raises(
        PreflightError, match=f"'{name}' is an argument of MMDetection's / MMSegmentation's SwinTransformer.*{fix}"
    ):
        check_model_config(demo_cfg(**argument))


def test_unscoped_swin_backbone_says_how_to_fix_it():
    with pytest.raises(PreflightError, match="type='mmswin.SwinBackbone'.*custom_imports"):
        check_model_config(demo_cfg(type='SwinBackbone'))


def test_out_indices_not_matching_neck_names_both_fields():
    with pytest.raises(PreflightError, match=r'model.neck.in_channels.*out_indices=\(1, 2, 3\)'):
        check_model_config(demo_cfg(out_indices=(1, 2, 3)))


def test_valid_demo_configs_pass_the_checks():
    check_model_config(Config.fromfile(DEMO))
    check_model_config(Config.fromfile(config('demo/upernet_swin_t_shapes.py')))


@pytest.mark.parametrize('size', [(1, 1), (3, 5), (2, 300), (300, 2)])
def test_backbone_handles_tiny_and_thin_inputs(size):
    from mmswin.models import SwinBackbone

    model = SwinBackbone(arch=dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    assert all(torch.isfinite(o).all() for o in outs)


@pytest.mark.slow
def test_backbone_handles_a_4000x6000_image():
    from mmswin.models import SwinBackbone

    model = SwinBackbone(arch=dict(embed_dims=8, depths=(2, 2, 2, 2), num_heads=(1, 1, 2, 2)), out_indices=(3,)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 4000, 6000))[0]
    assert out.shape == (1, 64, 125, 188) and torch.isfinite(out).all()


@pytest.fixture(scope='module')
def demo_detector():
    import importlib

    from mmengine.registry import DefaultScope

    from mmswin.engine.setup_runner import register_scope

    cfg = Config.fromfile(DEMO)
    register_scope(cfg)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = importlib.import_module('mmdet.registry').MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


@pytest.mark.parametrize('size', [(1, 1), (3, 5), (4, 300), (300, 4), (1000, 1500)])
def test_detector_inference_at_edge_sizes(demo_detector, size):
    from mmdet.structures import DetDataSample

    height, width = size
    sample = DetDataSample(metainfo=dict(img_shape=size, ori_shape=size, scale_factor=(1.0, 1.0), img_id=0))
    data = dict(inputs=[torch.randint(0, 255, (3, height, width), dtype=torch.uint8)], data_samples=[sample])
    with torch.no_grad():
        result = demo_detector.test_step(data)[0]
    boxes = result.pred_instances.bboxes
    assert torch.isfinite(boxes).all()
    assert (boxes[:, 2] <= width + 1e-3).all() and (boxes[:, 3] <= height + 1e-3).all()


def test_nan_loss_stops_the_run_naming_the_iteration(tmp_path):
    generate_coco_shapes(str(tmp_path / 'data' / 'coco_shapes'), num_train=4, num_val=2, size_range=(64, 80), seed=3)
    # An absurd learning rate without clipping blows the loss up within a few iterations.
    result = run_tool(
        'train.py',
        DEMO,
        '--work-dir',
        'w',
        '--cfg-options',
        'optim_wrapper.optimizer.lr=1e30',
        'optim_wrapper.clip_grad=None',
        'train_cfg.max_iters=6',
        'default_hooks.checkpoint.interval=1',
        'train_dataloader.num_workers=0',
        'train_dataloader.batch_size=2',
        cwd=str(tmp_path),
    )
    assert result.returncode == 1
    assert 'error: the loss is' in result.stderr and 'at iteration' in result.stderr
    assert 'Traceback' not in result.stderr


def test_skip_wrapper_drops_non_finite_updates():
    from mmswin.engine.finite_loss import SkipNonFiniteOptimWrapper

    weight = torch.nn.Parameter(torch.ones(2))
    wrapper = SkipNonFiniteOptimWrapper(torch.optim.SGD([weight], lr=0.1))
    wrapper.update_params((weight * float('nan')).sum())
    assert torch.equal(weight.detach(), torch.ones(2))
    wrapper.update_params(weight.sum())
    assert torch.allclose(weight.detach(), torch.full((2,), 0.9))
