"""tools/model_converters/convert_checkpoint.py: any format in, an mmswin checkpoint out that loads untouched."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmswin.models import SwinBackbone

from ..helpers import MINI_ARCH as MINI
from ..helpers import (
    mini_backbone,
    official_layout,
    randomize_,
    stage_outputs,
    timm_layout,
    torchvision_layout,
)

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    'convert_checkpoint', REPO / 'tools' / 'model_converters' / 'convert_checkpoint.py'
)
convert_checkpoint = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(convert_checkpoint)


@pytest.fixture(scope='module')
def reference():
    torch.manual_seed(0)
    model = randomize_(mini_backbone(), seed=11)
    with torch.no_grad():
        for i in range(3):  # classification layouts carry only the last output norm
            getattr(model, f'norm{i}').weight.fill_(1.0)
            getattr(model, f'norm{i}').bias.zero_()
    return model


@pytest.mark.parametrize('layout', ['official_cls', 'timm', 'torchvision'])
def test_converted_file_loads_as_mmswin_with_the_same_outputs(reference, layout, tmp_path):
    own = reference.state_dict()
    payload = {
        'official_cls': lambda: dict(model=official_layout(own, classification=True)),
        'timm': lambda: timm_layout(own),
        'torchvision': lambda: torchvision_layout(own),
    }[layout]()
    src, dst = tmp_path / 'src.pth', tmp_path / 'out' / 'dst.pth'
    torch.save(payload, src)
    assert convert_checkpoint.main([str(src), str(dst)]) == 0
    model = mini_backbone(init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    model.init_weights()
    assert model.checkpoint_report.source == 'mmswin'
    for actual, expected in zip(stage_outputs(model), stage_outputs(reference)):
        assert torch.equal(actual, expected)
    meta = torch.load(dst)['meta']  # loads with weights_only=True
    assert meta['arch'] == 'embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), window_size=7'


def test_window_size_option_resizes_the_tables(reference, tmp_path):
    src, dst = tmp_path / 'src.pth', tmp_path / 'dst.pth'
    torch.save(dict(model=official_layout(reference.state_dict(), classification=False)), src)
    assert convert_checkpoint.main([str(src), str(dst), '--window-size', '12']) == 0
    state = torch.load(dst)['state_dict']
    assert state['stages.3.blocks.1.attn.relative_position_bias_table'].shape == (23 * 23, 4)
    model = SwinBackbone(arch=MINI, window_size=12)
    model.load_state_dict(state)
    assert model.checkpoint_report.resized == [] and model.checkpoint_report.source == 'mmswin'
    assert all(out.isfinite().all() for out in stage_outputs(model))


def test_prefix_option_selects_the_backbone(reference, tmp_path):
    src, dst = tmp_path / 'src.pth', tmp_path / 'dst.pth'
    torch.save({'encoder.' + k: v for k, v in timm_layout(reference.state_dict()).items()}, src)
    assert convert_checkpoint.main([str(src), str(dst)]) == 1, 'unknown prefix without --prefix'
    assert convert_checkpoint.main([str(src), str(dst), '--prefix', 'encoder.']) == 0
    assert 'patch_embed.proj.weight' in torch.load(dst)['state_dict']


def test_bad_files_exit_with_a_clear_message(reference, tmp_path, capsys):
    src = tmp_path / 'src.pth'
    torch.save(reference.state_dict(), src)
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(src.read_bytes()[:5000])
    assert convert_checkpoint.main([str(truncated), str(tmp_path / 'dst.pth')]) == 1
    assert 'is truncated' in capsys.readouterr().err
    resnet = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(64, 3, 7, 7), 'fc.weight': torch.zeros(10, 64)}, resnet)
    assert convert_checkpoint.main([str(resnet), str(tmp_path / 'dst.pth')]) == 1
    assert 'no Swin Transformer weights' in capsys.readouterr().err
    assert not (tmp_path / 'dst.pth').exists()


def test_a_failed_write_leaves_no_file_and_an_existing_dst_untouched(reference, tmp_path, capsys, monkeypatch):
    """torch.save dies half-way (a full disk): DST keeps its old bytes and no partial file
    is left beside it. Writing straight into DST would leave it half-written."""
    src, dst = tmp_path / 'src.pth', tmp_path / 'dst.pth'
    torch.save(timm_layout(reference.state_dict()), src)
    dst.write_bytes(b'previous conversion')

    def save_half_then_fail(obj, path, *args, **kwargs):
        Path(path).write_bytes(b'PK\x03\x04 half a checkpoint')
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(torch, 'save', save_half_then_fail)
    assert convert_checkpoint.main([str(src), str(dst)]) == 1
    err = capsys.readouterr().err
    assert f"DST '{dst}': writing failed (No space left on device); nothing was written" in err
    assert dst.read_bytes() == b'previous conversion'
    assert sorted(path.name for path in tmp_path.iterdir()) == ['dst.pth', 'src.pth']


def test_bad_paths_are_refused_before_the_source_is_read(tmp_path, capsys, monkeypatch):
    """A wrong SRC or DST is named at once, not after reading a checkpoint of hundreds of MB."""
    src = tmp_path / 'src.pth'
    torch.save({'never.read': torch.zeros(1)}, src)
    import mmswin.checkpoint.convert

    monkeypatch.setattr(mmswin.checkpoint.convert, 'convert_checkpoint_file', lambda *a: pytest.fail('source was read'))
    assert convert_checkpoint.main([str(tmp_path / 'missing.pth'), str(tmp_path / 'dst.pth')]) == 1
    assert f"SRC not found: '{tmp_path / 'missing.pth'}'; give the path of a .pth checkpoint" in capsys.readouterr().err
    assert convert_checkpoint.main([str(src), str(tmp_path)]) == 1
    assert f"DST '{tmp_path}' is a directory; give a file path, e.g. '{tmp_path / 'swin.pth'}'" in (
        capsys.readouterr().err
    )
    locked = tmp_path / 'locked'
    locked.mkdir()
    access = os.access  # the suite may run as root, who may write anywhere: deny this folder
    monkeypatch.setattr(os, 'access', lambda path, mode: str(path) != str(locked) and access(path, mode))
    assert convert_checkpoint.main([str(src), str(locked / 'sub' / 'dst.pth')]) == 1
    assert f"cannot write into '{locked}' (permission denied)" in capsys.readouterr().err
    assert list(locked.iterdir()) == []


def test_command_line(reference, tmp_path):
    src, dst = tmp_path / 'src.pth', tmp_path / 'dst.pth'
    torch.save(timm_layout(reference.state_dict()), src)
    result = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'model_converters' / 'convert_checkpoint.py'), str(src), str(dst)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert 'converted from timm' in result.stdout and 'classification head (2)' in result.stdout
    assert dst.is_file()
