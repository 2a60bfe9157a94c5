"""ONNX export with dynamic batch, height and width, checked in ONNX Runtime at sizes other
than the traced one (a check at the export size alone proves nothing: a graph that baked
in that size's grid passes it), and ``torch.export``'s program at the same sizes.

The backbone is traced once at 2x3x229x311, which pads every stage of a window-7 Swin.
"""

import os

import pytest
import torch

from mmswin.deployment import onnx_export as ox
from mmswin.models import SwinBackbone, SwinV2Backbone

from ..helpers import MINI_ARCH, perturb_
from ..tools_runner import config, run_tool

pytest.importorskip('onnxruntime')

EXPORT_SHAPE = (2, 3, 229, 311)
# Padding in every stage (B = 2), more padding, a large map, no padding (B = 3), and a
# last stage (2x2) smaller than the window.
SIZES = [(2, 3, 229, 311), (1, 3, 97, 131), (1, 3, 333, 501), (3, 3, 224, 224), (1, 3, 64, 64)]
TOLERANCE = 1e-4


@pytest.fixture(scope='module')
def exported_backbone(tmp_path_factory):
    torch.manual_seed(0)
    backbone = perturb_(SwinBackbone(arch=MINI_ARCH, window_size=7, drop_path_rate=0.0)).eval()
    example = torch.randn(*EXPORT_SHAPE)
    program = ox.export_program(backbone, example)
    path = str(tmp_path_factory.mktemp('onnx') / 'backbone.onnx')
    names = ox.backbone_output_names(backbone)
    # Unoptimised, to save time: the tool's (optimised) path is the UperNet test's.
    ox.export_onnx(backbone, example, path, output_names=names, program=program, optimize=False)
    return backbone, program, path


def test_example_pads_every_stage():
    backbone = SwinBackbone(arch=MINI_ARCH, window_size=7)
    assert ox.padding_example_size(backbone, 229) == 229
    assert ox.padding_example_size(backbone, 311) == 311
    assert ox.padding_example_size(backbone, 224) != 224  # 56, 28, 14, 7 tokens: no padding anywhere


@pytest.mark.parametrize('shape', SIZES, ids=lambda s: 'x'.join(map(str, s)))
def test_backbone_onnx_matches_eager(exported_backbone, shape):
    backbone, _, path = exported_backbone
    (check,) = ox.compare_in_onnxruntime(path, backbone, [shape])
    with torch.no_grad():
        expected = [tuple(t.shape) for t in backbone(torch.zeros(shape))]
    assert list(check.output_shapes) == expected
    assert check.max_abs_diff < TOLERANCE, check.line()


@pytest.mark.slow
def test_backbone_onnx_matches_eager_at_detection_size(exported_backbone):
    backbone, _, path = exported_backbone
    (check,) = ox.compare_in_onnxruntime(path, backbone, [(1, 3, 800, 1333)])
    assert check.max_abs_diff < TOLERANCE, check.line()


def test_onnx_file_has_dynamic_batch_height_width(exported_backbone):
    import onnx

    _, _, path = exported_backbone
    model = onnx.load(path)
    (images,) = model.graph.input
    dims = images.type.tensor_type.shape.dim
    assert [bool(d.dim_param) for d in dims] == [True, False, True, True]
    assert dims[1].dim_value == 3
    assert [output.name for output in model.graph.output] == ['stage0', 'stage1', 'stage2', 'stage3']
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    assert metadata[ox.VALID_SIZES_KEY] == 'batch 1..1024, height and width 33..8192'


@pytest.mark.parametrize('shape', [(2, 3, 229, 311), (1, 3, 97, 131), (3, 3, 224, 224), (1, 3, 64, 64)])
def test_torch_export_program_matches_eager(exported_backbone, shape):
    backbone, program, _ = exported_backbone
    x = torch.randn(*shape)
    with torch.no_grad():
        for actual, expected in zip(program.module()(x), backbone(x)):
            assert actual.shape == expected.shape
            assert (actual - expected).abs().max() < TOLERANCE


def test_failed_write_leaves_the_previous_file(tmp_path, monkeypatch):
    def write_half_then_fail(self, destination, **kwargs):
        with open(destination, 'wb') as file:
            file.write(b'half a model')
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(torch.onnx.ONNXProgram, 'save', write_half_then_fail)
    out = tmp_path / 'model.onnx'
    out.write_bytes(b'previous')
    with pytest.raises(OSError, match='No space left'):
        ox.export_onnx(torch.nn.Conv2d(3, 4, 3), torch.randn(2, 3, 40, 40), str(out))
    assert out.read_bytes() == b'previous'
    assert os.listdir(tmp_path) == ['model.onnx']


def test_adaptive_pooling_stand_in_equals_torch():
    torch.manual_seed(0)
    for output_size in (1, 2, 3, 6, (None, 3)):
        for size in ((2, 2), (5, 7), (8, 10), (13, 17), (1, 1)):
            x = torch.randn(2, 4, *size)
            expected = torch.nn.AdaptiveAvgPool2d(output_size)(x)
            actual = ox.AdaptiveAvgPool2dAsProducts(output_size)(x)
            assert actual.shape == expected.shape
            assert (actual - expected).abs().max() < 1e-6


def test_upernet_demo_exports_end_to_end(tmp_path):
    """The demo UperNet, image -> logits at the input size, through the tool; its weights
    saved here, so the test compares the file with the same model in this process."""
    from mmengine.registry import DefaultScope

    from mmswin.engine.setup_runner import load_config

    cfg = load_config(config('demo/upernet_swin_t_shapes.py'))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmseg'):
        module, _ = ox.build_part(cfg, None, 'model')
    perturb_(module)
    checkpoint = tmp_path / 'upernet.pth'
    meta = dict(dataset_meta=dict(classes=list(cfg.metainfo['classes']), palette=list(cfg.metainfo['palette'])))
    torch.save({'state_dict': module.segmentor.state_dict(), 'meta': meta}, checkpoint)
    out = tmp_path / 'onnx' / 'upernet.onnx'  # a folder the tool makes
    result = run_tool(
        'deployment/export_onnx.py',
        config('demo/upernet_swin_t_shapes.py'),
        str(checkpoint),
        '--part',
        'model',
        '--out',
        str(out),
        '--skip-check',
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'wrote' in result.stdout and out.is_file()
    shapes = [(2, 3, 229, 311), (1, 3, 97, 131), (1, 3, 64, 64)]
    for check in ox.compare_in_onnxruntime(str(out), module, shapes):
        batch, _, height, width = check.shape
        assert check.output_shapes == ((batch, 5, height, width),)
        assert check.max_abs_diff < TOLERANCE * max(1.0, check.max_abs_value), check.line()


@pytest.mark.slow
def test_v2_backbone_onnx_matches_eager_where_its_window_is_fixed(tmp_path):
    torch.manual_seed(0)
    backbone = perturb_(SwinV2Backbone(arch=MINI_ARCH, window_size=7, drop_path_rate=0.0)).eval()
    assert ox.min_dynamic_size(backbone) == 4 * 8 * 7 + 1  # the last stage's map must exceed the window
    path = str(tmp_path / 'v2.onnx')
    ox.export_onnx(backbone, torch.randn(*EXPORT_SHAPE), path)
    for check in ox.compare_in_onnxruntime(path, backbone, [(2, 3, 229, 311), (1, 3, 333, 501)]):
        assert check.max_abs_diff < TOLERANCE, check.line()


@pytest.mark.slow
def test_fp16_export_runs_in_onnxruntime_near_autocast(tmp_path):
    torch.manual_seed(0)
    backbone = perturb_(SwinBackbone(arch=MINI_ARCH, window_size=7, drop_path_rate=0.0)).eval()
    result = ox.check_low_precision(
        backbone, torch.randn(*EXPORT_SHAPE), torch.float16, [(1, 3, 97, 131)], str(tmp_path / 'fp16.onnx')
    )
    assert result.error is None, result.error
    (autocast,), (fp32,) = result.against_autocast, result.against_fp32
    assert fp32.max_abs_diff < 5e-2 * max(1.0, fp32.max_abs_value), fp32.line()
    assert autocast.max_abs_diff < 5e-2 * max(1.0, autocast.max_abs_value), autocast.line()


@pytest.mark.slow
def test_mask_rcnn_dense_part_exports(tmp_path):
    out = tmp_path / 'features.onnx'
    result = run_tool(
        'deployment/export_onnx.py',
        config('demo/mask_rcnn_swin_t_shapes.py'),
        '--part',
        'features',
        '--out',
        str(out),
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count('max |ORT - PyTorch|') == 3
    assert os.path.isfile(out)
