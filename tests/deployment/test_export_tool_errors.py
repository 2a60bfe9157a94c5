"""tools/deployment/export_onnx.py on bad input: one ``error:`` line naming the problem and
what to do, exit code 2, before any export, and no file written."""

import importlib.util
import os
import subprocess
import sys

import pytest

from mmswin.errors import PreflightError

from ..tools_runner import ROOT, config, run_tool

pytest.importorskip('onnxruntime')

TOOL = os.path.join(ROOT, 'tools', 'deployment', 'export_onnx.py')
SEG = config('demo/upernet_swin_t_shapes.py')
DET = config('demo/mask_rcnn_swin_t_shapes.py')


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('export_onnx_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def refused(tool, *argv) -> str:
    with pytest.raises(PreflightError) as error:
        tool.main(list(argv))
    return str(error.value)


def test_missing_config_is_one_line_exit_2(tmp_path):
    result = run_tool('deployment/export_onnx.py', 'configs/nope.py', '--out', 'x.onnx', cwd=str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: config file not found: 'configs/nope.py'; configs live under configs/, e.g. "
        'configs/demo/mask_rcnn_swin_t_shapes.py'
    ]
    assert os.listdir(tmp_path) == []


def test_help_does_not_import_torch():
    code = (
        'import runpy, sys\n'
        f'sys.argv = [{TOOL!r}, "--help"]\n'
        'try:\n'
        f'    runpy.run_path({TOOL!r}, run_name="__main__")\n'
        'except SystemExit:\n'
        '    pass\n'
        'print("torch" in sys.modules)\n'
    )
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().endswith('False'), result.stdout + result.stderr


def test_missing_checkpoint(tool, tmp_path):
    message = refused(tool, SEG, str(tmp_path / 'none.pth'), '--out', str(tmp_path / 'x.onnx'))
    assert message.startswith("checkpoint not found: '") and 'none.pth' in message


@pytest.mark.parametrize('shape', [('0', '64'), ('64', 'x'), ('-3', '64')])
def test_bad_shape(tool, tmp_path, shape):
    message = refused(tool, SEG, '--shape', *shape, '--out', str(tmp_path / 'x.onnx'))
    assert message == f'--shape needs two positive ints, got {shape[0]} {shape[1]}'


def test_dynamic_export_of_batch_1(tool, tmp_path):
    message = refused(tool, SEG, '--batch', '1', '--out', str(tmp_path / 'x.onnx'))
    assert message.startswith('--batch 1: a dynamic export traces a batch of at least 2')
    assert message.endswith('use --batch 2, or --static for a file of batch 1')


def test_shape_below_the_dynamic_minimum(tool, tmp_path):
    message = refused(tool, SEG, '--part', 'backbone', '--shape', '32', '64', '--out', str(tmp_path / 'x.onnx'))
    assert message == '--shape 32 64: a dynamic export of this model needs height and width >= 33'
    assert os.listdir(tmp_path) == []


def test_unwritable_out(tool, tmp_path):
    message = refused(tool, SEG, '--out', str(tmp_path))
    assert message.startswith(f"--out '{tmp_path}' is a directory; give a file path")
    (tmp_path / 'file').write_text('')
    message = refused(tool, SEG, '--out', str(tmp_path / 'file' / 'x.onnx'))
    assert message.startswith('--out') and 'file' in message


@pytest.mark.parametrize('opset', ['17', '26', '99'])
def test_opset_the_exporter_or_onnxruntime_cannot_do(tool, tmp_path, opset):
    import onnxruntime

    from mmswin.deployment.onnx_export import max_onnxruntime_opset

    message = refused(tool, SEG, '--opset', opset, '--out', str(tmp_path / 'x.onnx'))
    if opset == '17':
        assert message == '--opset 17: the ONNX exporter writes opset 18 or later; use --opset 18'
    elif int(opset) > max_onnxruntime_opset():
        assert message.startswith(f'--opset {opset}: ONNX Runtime {onnxruntime.__version__} runs opsets up to ')
    else:
        assert message.startswith('--opset 26: the ONNX exporter was checked on these models up to opset 24')
    assert message.endswith('use --opset 18..24') or opset == '17'


def test_whole_detector_names_what_to_use(tool, tmp_path):
    message = refused(tool, DET, '--part', 'model', '--out', str(tmp_path / 'x.onnx'))
    assert message.startswith('--part model cannot export MaskRCNN with plain ONNX')
    assert '--part features' in message and 'mmdeploy' in message and 'docs/deployment.md' in message


@pytest.mark.parametrize(
    'part, start',
    [('features', '--part features is for detectors'), ('nothing', '--part must be one of backbone, model, features')],
)
def test_part_the_model_lacks(tool, tmp_path, part, start):
    assert refused(tool, SEG, '--part', part, '--out', str(tmp_path / 'x.onnx')).startswith(start)


def test_max_onnxruntime_opset_runs_the_default():
    from mmswin.deployment.onnx_export import DEFAULT_OPSET, max_onnxruntime_opset

    assert max_onnxruntime_opset() >= DEFAULT_OPSET
