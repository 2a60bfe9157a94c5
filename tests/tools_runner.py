"""Run the command-line tools in a subprocess, from a scratch folder that holds ``data/``."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_tool(tool: str, *args: str, cwd: str, timeout: int = 600, env: dict = None) -> subprocess.CompletedProcess:
    """``python tools/<tool> ARGS`` with ``cwd`` as working dir; returns the finished process."""
    environment = dict(os.environ, OMP_NUM_THREADS='2', PYTHONHASHSEED='0', **(env or {}))
    environment['PYTHONPATH'] = ROOT + os.pathsep + environment.get('PYTHONPATH', '')
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools', tool), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def config(path: str) -> str:
    return os.path.join(ROOT, 'configs', path)


def quick_training(max_iters: int, val_interval: int, checkpoint_interval: int, *extra: str) -> list[str]:
    """``--cfg-options`` for a few iterations of a demo config on a tiny set: batch 2,
    data loaded in the main process, a log line per iteration, seed 0; ``extra`` adds more."""
    return [
        '--cfg-options',
        f'train_cfg.max_iters={max_iters}',
        f'train_cfg.val_interval={val_interval}',
        f'default_hooks.checkpoint.interval={checkpoint_interval}',
        'default_hooks.logger.interval=1',
        'train_dataloader.batch_size=2',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0',
        'randomness.seed=0',
        *extra,
    ]


def train_on_tiny_set(folder, demo: str, generate, data_name: str, options: list, **set_size):
    """Generate the tiny set ``folder/data/<data_name>`` with ``generate(**set_size)`` and
    train ``demo`` on it into ``folder/work``; returns the finished run (fails the test if it failed)."""
    generate(os.path.join(str(folder), 'data', data_name), **set_size)
    result = run_tool('train.py', demo, '--work-dir', 'work', *options, cwd=str(folder))
    assert result.returncode == 0, result.stderr[-3000:]
    return result
