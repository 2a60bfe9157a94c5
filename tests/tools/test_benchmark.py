"""tools/analysis_tools/benchmark.py: the peer comparison's smoke run at tiny sizes (every
part runs and reports positive figures in its JSON; no timing assertions), the
missing-config skip, freed-memory reuse, and images per second over a demo config's test data."""

import json
import math
import os
import re
import subprocess
import sys

import pytest

from ..tools_runner import ROOT, run_tool

NAMES = ('mmswin', 'mmdet', 'mmseg')


def positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def run_quick(tmp_path, *args):
    out = tmp_path / 'bench.json'
    result = run_tool(
        'analysis_tools/benchmark.py',
        'peers',
        '--quick',
        '--threads',
        '1',
        '--json',
        str(out),
        '--plot',
        str(tmp_path / 'scaling.png'),
        *args,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(out.read_text()), result.stdout


def test_quick_run_reports_every_figure(tmp_path):
    results, stdout = run_quick(tmp_path, '--parts', 'complexity', 'backbones', 'floor', 'scaling')
    assert results['environment']['threads'] == 1 and results['environment']['dtype'] == 'fp32'
    cpuinfo = '/proc/cpuinfo'
    if os.path.exists(cpuinfo) and 'cpu family' in open(cpuinfo).read():  # named with its family and model
        assert 'family' in results['environment']['cpu'], results['environment']['cpu']

    complexity = results['complexity']
    for name in NAMES:
        assert positive(complexity['params'][name])
        assert all(positive(flops[name]) for flops in complexity['flops'].values())

    backbones = results['backbones']
    for timed in (
        *backbones['inference'].values(),
        backbones['throughput']['timing'],
        backbones['train_step']['timing'],
        backbones['train_step_drop_path']['timing'],
    ):
        for name in NAMES:
            assert positive(timed[name]['median_s']) and all(positive(t) for t in timed[name]['runs_s'])
    assert all(positive(backbones['throughput']['images_per_s'][name]) for name in NAMES)
    memory = backbones['train_memory']
    assert 'profiler' in memory['method']
    for name in NAMES:
        assert positive(memory['peak_bytes'][name]) and positive(memory['peak_bytes'][f'{name}_with_cp'])
    for peer in ('vs_mmdet', 'vs_mmseg'):
        assert all(positive(ratio) for ratio in backbones['ratios'][peer].values())

    floor = results['floor']
    for name in NAMES:
        entry = floor[name]
        for key in (
            'time_s',
            'matmuls_alone_s',
            'time_over_own_floor',
            'elementwise_alone_s',
            'essential_alone_s',
            'essential_over_own_floor',
            'model_gflop_per_s',
            'matmul_gflop_per_s',
        ):
            assert positive(entry[key]), (name, key)
        assert entry['num_matmuls'] > 0
    for name in ('mmswin', 'mmdet'):  # the training step against its forward and backward products
        entry = floor['train'][name]
        keys = ('time_s', 'matmuls_alone_s', 'time_over_own_floor', 'elementwise_alone_s', 'time_over_essential')
        assert all(positive(entry[key]) for key in keys), name
        assert entry['essential_alone_s'] > entry['matmuls_alone_s']
        assert entry['num_matmuls'] > floor[name]['num_matmuls']  # backward products recorded too
        assert positive(entry['matmul_gflop'])
    assert positive(floor['train']['mmswin']['mmdet_time_over_essential'])

    scaling = results['scaling']
    assert scaling['sizes'] == [32, 48, 64]
    for name in ('mmswin', 'global_attention'):
        assert len(scaling['time_s'][name]) == 3 and all(positive(t) for t in scaling['time_s'][name])
        assert math.isfinite(scaling['fits'][name]['linear']['r2'])
    assert (tmp_path / 'scaling.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'

    for heading in ('Backbones', 'Floor at', 'Training step, batch', 'Scaling', 'train peak MiB', 'drop_path_rate 0.2'):
        assert heading in stdout


@pytest.mark.parametrize(
    'args, message',
    [
        (['--train-drop-path-rate', '1.5'], '--train-drop-path-rate must be in [0, 1), got 1.5'),
        (['--json', '{tmp}'], "--json '{tmp}' is a directory; give a file path, e.g. '{tmp}/benchmark.json'"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(tmp_path, args, message):
    args = [arg.format(tmp=tmp_path) for arg in args]
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools', 'analysis_tools', 'benchmark.py'), 'peers', *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and message.format(tmp=tmp_path) in proc.stderr, proc.stderr[-2000:]


def test_models_part_skips_a_missing_config_with_its_name(tmp_path):
    results, stdout = run_quick(
        tmp_path, '--parts', 'models', '--det-config', 'no/such_det.py', '--seg-config', 'no/such_seg.py'
    )
    assert results['models']['mask_rcnn'] == {'skipped': 'config no/such_det.py not found'}
    assert 'no/such_seg.py not found' in results['models']['upernet']['skipped']
    assert 'mask_rcnn: skipped' in stdout


_FAULTS_OF_REUSED_ALLOCATIONS = """
import resource, sys
import torch
from mmswin.analysis import peers  # what the comparison imports first, so the heap starts alike
from mmswin.analysis.timing import keep_freed_memory
if sys.argv[1] == 'keep':
    keep_freed_memory()
for _ in range(3):  # 64 MiB, above glibc's largest default mmap threshold; the heap may grow twice
    torch.empty(2**24).fill_(1.0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.empty(2**24).fill_(1.0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_keep_freed_memory_reuses_pages_and_is_reported(tmp_path):
    """By default each freed 64 MiB tensor is unmapped and the next one faults all its 16384
    pages in again; with --keep-freed-memory the pages stay in the heap and are reused. Small
    allocations landing in a freed block can make the heap grow by another block now and then
    (which iteration depends on the machine: CI's grew on the third), so the test warms up
    with three blocks and counts ten reuses together. The run records the setting."""
    script = _FAULTS_OF_REUSED_ALLOCATIONS
    faults = {}
    for mode in ('default', 'keep'):
        proc = subprocess.run([sys.executable, '-c', script, mode], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        faults[mode] = int(proc.stdout.split()[-1])
    pages = 2**24 * 4 // 4096
    assert faults['default'] > 8 * pages and faults['keep'] < 3 * pages, faults

    results, stdout = run_quick(
        tmp_path, '--keep-freed-memory', '--parts', 'models', '--det-config', 'no/d.py', '--seg-config', 'no/s.py'
    )
    assert results['environment']['keep_freed_memory'] is True
    assert 'freed memory kept in the heap (--keep-freed-memory)' in stdout.splitlines()[0]


@pytest.mark.slow
def test_quick_run_of_the_whole_models(tmp_path):
    det = os.path.join(ROOT, 'configs', 'mask_rcnn_swin_t.py')
    seg = os.path.join(ROOT, 'configs', 'upernet_swin_t.py')
    results, _ = run_quick(tmp_path, '--parts', 'models', '--det-config', det, '--seg-config', seg)
    for task, peer in (('mask_rcnn', 'mmdet'), ('upernet', 'mmseg')):
        entry = results['models'][task]
        for name in ('mmswin', peer):
            assert positive(entry['inference']['timing'][name]['median_s'])
            assert positive(entry['train_step']['timing'][name]['median_s'])
            assert positive(entry['train_memory']['peak_bytes'][name])
        assert entry['params']['mmswin'] == entry['params'][peer]


@pytest.mark.parametrize(
    'demo, task',
    [('demo/mask_rcnn_swin_t_shapes.py', 'inference'), ('demo/upernet_swin_t_shapes.py', 'dataloader')],
)
def test_fps_over_a_demo_configs_test_data(tmp_path, demo, task):
    """Out of the box: the demo data set is generated, then the task is timed and logged."""
    result = run_tool(
        'analysis_tools/benchmark.py',
        os.path.join(ROOT, 'configs', demo),
        '--task',
        task,
        '--max-iter',
        '2',
        '--log-interval',
        '1',
        '--num-warmup',
        '1',
        '--repeat-num',
        '2',
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (result.stdout + result.stderr).count(f'[{task}] done 2/2: ') == 2, result.stdout[-3000:]
    runs = re.findall(
        rf'^run (\d)/2, {task}: (\d+) images in [\d.]+ s: ([\d.]+) img/s, ([\d.]+) ms/img$', result.stdout, re.M
    )
    assert [run[0] for run in runs] == ['1', '2'] and all(int(run[1]) > 0 and float(run[2]) > 0 for run in runs)
    assert f'{task} over 2 runs: ' in result.stdout


def test_fps_flags_are_checked_before_any_work(tmp_path):
    result = run_tool(
        'analysis_tools/benchmark.py',
        os.path.join(ROOT, 'configs', 'demo', 'mask_rcnn_swin_t_shapes.py'),
        '--max-iter',
        '0',
        cwd=str(tmp_path),
    )
    assert result.returncode == 2 and 'error: --max-iter must be at least 1, got 0' in result.stderr
    assert not (tmp_path / 'data').exists()  # the demo data set was not generated
