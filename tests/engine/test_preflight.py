"""Missing data sets and checkpoints give one clear line, before any heavy work."""

import os
import subprocess
import sys

import pytest
from mmengine.config import Config

from mmswin.engine.preflight import (
    check_checkpoints,
    check_datasets,
    check_output_file,
    check_output_folder,
    run_tool,
)
from mmswin.engine.setup_runner import set_work_dir
from mmswin.errors import BadDataError, PreflightError
from tests.tools_runner import ROOT


def det_cfg(tmp_path, **extra):
    return Config(
        dict(
            default_scope='mmdet',
            train_dataloader=dict(
                dataset=dict(
                    data_root=str(tmp_path) + '/coco/',
                    ann_file='annotations/train.json',
                    data_prefix=dict(img='train2017/'),
                )
            ),
            model=dict(
                backbone=dict(
                    type='mmswin.SwinBackbone',
                    init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'swin_t.pth')),
                )
            ),
            **extra,
        )
    )


def test_missing_annotation_file_names_path_and_demo(tmp_path):
    with pytest.raises(PreflightError) as error:
        check_datasets(det_cfg(tmp_path), ('train_dataloader',))
    message = str(error.value)
    assert 'annotations/train.json' in message and 'make demo' in message and '\n' not in message


@pytest.mark.parametrize('field, value', [('batch_size', 0), ('batch_size', 2.5), ('num_workers', -1)])
def test_loader_counts_that_are_not_counts_are_named(tmp_path, field, value):
    cfg = det_cfg(tmp_path)
    cfg.train_dataloader[field] = value
    with pytest.raises(PreflightError, match=f'train_dataloader.{field} must be an integer >= .*, got {value}; set it'):
        check_datasets(cfg, ('train_dataloader',))


def test_missing_image_folder_is_reported(tmp_path):
    (tmp_path / 'coco' / 'annotations').mkdir(parents=True)
    (tmp_path / 'coco' / 'annotations' / 'train.json').write_text('{}')
    with pytest.raises(PreflightError, match='train2017'):
        check_datasets(det_cfg(tmp_path), ('train_dataloader',))
    (tmp_path / 'coco' / 'train2017').mkdir()
    check_datasets(det_cfg(tmp_path), ('train_dataloader',))


def test_missing_pretrained_checkpoint_names_the_config_key(tmp_path):
    with pytest.raises(PreflightError) as error:
        check_checkpoints(det_cfg(tmp_path))
    assert 'model.backbone.init_cfg.checkpoint' in str(error.value) and 'swin_t.pth' in str(error.value)
    import torch

    torch.save({'w': torch.zeros(1)}, tmp_path / 'swin_t.pth')
    check_checkpoints(det_cfg(tmp_path))


def test_missing_load_from(tmp_path):
    cfg = det_cfg(tmp_path, load_from=str(tmp_path / 'nope.pth'))
    cfg.model.backbone.init_cfg = None
    with pytest.raises(PreflightError, match='load_from'):
        check_checkpoints(cfg)


def test_remote_checkpoints_are_not_checked(tmp_path):
    cfg = det_cfg(tmp_path)
    cfg.model.backbone.init_cfg.checkpoint = 'https://example.org/swin.pth'
    check_checkpoints(cfg)


def test_truncated_pretrained_checkpoint_is_reported_before_training(tmp_path):
    import torch

    good = tmp_path / 'swin_t.pth'
    torch.save({'w': torch.zeros(100)}, good)
    good.write_bytes(good.read_bytes()[:200])
    with pytest.raises(PreflightError, match='truncated'):
        check_checkpoints(det_cfg(tmp_path))


def test_output_file_checks_name_the_argument_and_create_nothing(tmp_path, monkeypatch):
    check_output_file(str(tmp_path / 'new' / 'deeper' / 'out.json'), '--json', 'out.json')  # may be made later
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(PreflightError, match=f"--json '{tmp_path}' is a directory; give a file path, e.g. "):
        check_output_file(str(tmp_path), '--json', 'out.json')
    (tmp_path / 'notes.txt').write_text('a file')
    with pytest.raises(PreflightError, match="'.*notes.txt' is a file, not a folder"):
        check_output_file(str(tmp_path / 'notes.txt' / 'out.json'), '--json', 'out.json')
    locked = tmp_path / 'locked'
    locked.mkdir()
    access = os.access  # the suite may run as root, who may write anywhere: deny this folder
    monkeypatch.setattr(os, 'access', lambda path, mode: str(path) != str(locked) and access(path, mode))
    with pytest.raises(PreflightError, match=f"--out '.*': cannot write into '{locked}' \\(permission denied\\)"):
        check_output_file(str(locked / 'a' / 'page.md'), '--out', 'page.md')


def test_output_folder_checks_name_the_argument_and_create_nothing(tmp_path, monkeypatch):
    check_output_folder(str(tmp_path / 'runs' / 'a'), '--out-dir')
    check_output_folder(str(tmp_path), '--out-dir')
    assert list(tmp_path.iterdir()) == []
    (tmp_path / 'notes.txt').write_text('a file')
    with pytest.raises(PreflightError, match="--out-dir '.*notes.txt' is a file, not a folder; choose another path"):
        check_output_folder(str(tmp_path / 'notes.txt'), '--out-dir')
    with pytest.raises(PreflightError, match="--out-dir '.*': '.*notes.txt' is a file, not a folder"):
        check_output_folder(str(tmp_path / 'notes.txt' / 'pictures'), '--out-dir')
    access = os.access  # the suite may run as root, who may write anywhere: deny this folder
    monkeypatch.setattr(os, 'access', lambda path, mode: str(path) != str(tmp_path) and access(path, mode))
    with pytest.raises(PreflightError, match=f"cannot write into '{tmp_path}' \\(permission denied\\)"):
        check_output_folder(str(tmp_path / 'runs'), '--out-dir')


def test_work_dir_that_cannot_be_a_folder_is_named_with_its_source(tmp_path):
    (tmp_path / 'taken').write_text('a file')
    cfg = Config(dict(work_dir=str(tmp_path / 'taken')))
    with pytest.raises(PreflightError, match="the config's work_dir '.*taken' is a file, not a folder"):
        set_work_dir(cfg, 'configs/x.py', None)
    with pytest.raises(PreflightError, match="--work-dir '.*': '.*taken' is a file, not a folder"):
        set_work_dir(cfg, 'configs/x.py', str(tmp_path / 'taken' / 'run'))
    set_work_dir(cfg, 'configs/x.py', str(tmp_path / 'run'))
    assert cfg.work_dir == str(tmp_path / 'run') and not (tmp_path / 'run').exists()


def test_run_tool_prints_one_error_line_and_exits_2():
    script = (
        'from mmswin.engine.preflight import run_tool\n'
        'from mmswin.errors import PreflightError\n'
        'def main():\n'
        "    raise PreflightError('data set not found: data/coco; run make demo')\n"
        'run_tool(main)\n'
    )
    result = subprocess.run([sys.executable, '-c', script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr == 'error: data set not found: data/coco; run make demo\n'  # no traceback
    assert result.stdout == ''


def test_run_tool_exit_codes(capsys):
    with pytest.raises(SystemExit) as exit_:
        run_tool(lambda: 3)
    assert exit_.value.code == 3 and capsys.readouterr().err == ''

    def bad_data():
        raise BadDataError('cannot read image x.png')

    with pytest.raises(SystemExit) as exit_:
        run_tool(bad_data)
    assert exit_.value.code == 2 and capsys.readouterr().err == 'error: cannot read image x.png\n'

    def diverged():
        raise FloatingPointError('the loss is nan')

    with pytest.raises(SystemExit) as exit_:
        run_tool(diverged, also={FloatingPointError: 1})
    assert exit_.value.code == 1 and capsys.readouterr().err == 'error: the loss is nan\n'
    with pytest.raises(FloatingPointError):
        run_tool(diverged)  # not caught unless named in ``also``


_TOOL_EXIT = """
import atexit, os, sys
import torch.distributed as dist
from mmswin.engine.preflight import run_tool
from mmswin.errors import PreflightError

class Teardown:
    def __del__(self):
        os.write(1, b'teardown ran\\n')

keeper = Teardown()  # a module global: collected in the interpreter's teardown
if sys.argv[1] == 'distributed':
    dist.init_process_group('gloo', init_method='file://' + sys.argv[2], rank=0, world_size=1)
atexit.register(lambda: print('atexit ran'))

def main():
    print('buffered output')  # stdout is a pipe: block-buffered until flushed
    if sys.argv[3] == 'error':
        raise PreflightError('bad input')
    return int(sys.argv[3])

run_tool(main)
"""


@pytest.mark.parametrize(
    'mode, outcome, code, teardown',
    [
        ('single', '0', 0, True),
        ('distributed', '0', 0, False),
        ('distributed', '3', 3, False),
        ('distributed', 'error', 2, False),
    ],
)
def test_a_distributed_rank_exits_without_the_interpreter_teardown(tmp_path, mode, outcome, code, teardown):
    """A rank leaves with os._exit (its teardown could abort it after a finished run), yet
    with its exit code, its output flushed and the atexit handlers run; a single-process
    run exits normally."""
    result = subprocess.run(
        [sys.executable, '-c', _TOOL_EXIT, mode, str(tmp_path / 'store'), outcome],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == code, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ['buffered output', 'atexit ran'], result.stdout + result.stderr
    assert ('teardown ran' in lines) == teardown
    assert result.stderr == ('error: bad input\n' if outcome == 'error' else '')


_IMPORTS_AFTER_TOOL = """
import runpy, sys
sys.argv = [{tool!r}] + {args!r}
try:
    runpy.run_path({path!r}, run_name='__main__')
except SystemExit as done:
    print('exit', done.code)
print('heavy', sorted(name for name in ('torch', 'mmengine.optim', 'mmdet', 'mmseg') if name in sys.modules))
"""


@pytest.mark.parametrize(
    'tool, args, code',
    [
        ('train.py', ['--help'], 0),
        ('test.py', ['--help'], 0),
        ('demo.py', ['--help'], 0),
        ('train.py', ['configs/no_such_config.py'], 2),
        ('model_converters/convert_checkpoint.py', ['--help'], 0),
        ('model_converters/convert_checkpoint.py', ['no_such.pth', 'out.pth'], 1),
        ('analysis_tools/visualize_windows.py', ['--size', '14', '0'], 2),
        ('test.py', ['configs/mask_rcnn_swin_t.py', 'no_such.pth'], 2),
        ('analysis_tools/get_flops.py', ['configs/no_such_config.py'], 2),
    ],
)
def test_help_and_a_missing_config_answer_before_heavy_imports(tool, args, code):
    """Flags and a wrong config path are answered without importing torch, MMEngine's
    optimisers, MMDetection or MMSegmentation (seconds of start-up)."""
    script = _IMPORTS_AFTER_TOOL.format(tool=tool, args=args, path=f'{ROOT}/tools/{tool}')
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    lines = result.stdout.strip().splitlines()
    assert lines[-2:] == [f'exit {code}', 'heavy []'], result.stdout[-2000:] + result.stderr[-2000:]


def test_test_tool_refuses_an_unpicklable_out_path_first():
    """MMEngine's DumpResults takes only .pkl paths and says so after the runner is built."""
    script = _IMPORTS_AFTER_TOOL.format(
        tool='test.py',
        args=['configs/mask_rcnn_swin_t.py', 'README.md', '--out', 'results.json'],
        path=f'{ROOT}/tools/test.py',
    )
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.stdout.strip().splitlines()[-2:] == ['exit 2', 'heavy []'], result.stdout + result.stderr
    assert result.stderr == "error: --out 'results.json': the predictions are pickled; give a .pkl path\n"
