"""One training run per work dir: the lock, its takeover after a kill, and the tools' line."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from mmswin.datasets import generate_coco_shapes
from mmswin.engine.work_dir_lock import LOCK_NAME, WorkDirLock
from mmswin.errors import PreflightError, WorkDirInUseError

from ..tools_runner import ROOT, config, run_tool

DEMO = config('demo/mask_rcnn_swin_t_shapes.py')
_HOLD_LOCK = (
    'import sys, time\n'
    'from mmswin.engine.work_dir_lock import WorkDirLock\n'
    'WorkDirLock(sys.argv[1]).acquire()\n'
    "print('held', flush=True)\n"
    'time.sleep(120)\n'
)


def test_a_second_lock_on_a_work_dir_is_refused_naming_the_holder(tmp_path):
    lock = WorkDirLock(str(tmp_path)).acquire()
    with pytest.raises(WorkDirInUseError, match=f"work dir '{tmp_path}' is in use by pid {os.getpid()}.*--work-dir"):
        WorkDirLock(str(tmp_path)).acquire()
    assert issubclass(WorkDirInUseError, PreflightError)  # the tools print it as one line
    lock.release()
    again = WorkDirLock(str(tmp_path)).acquire()
    assert again.stale_holder == ''  # released cleanly: nothing to take over
    again.release()


def test_the_lock_of_a_killed_run_is_taken_over(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, '-c', _HOLD_LOCK, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
    try:
        assert holder.stdout.readline().strip() == 'held'
        with pytest.raises(WorkDirInUseError, match=f'in use by pid {holder.pid}'):
            WorkDirLock(str(tmp_path)).acquire()
    finally:
        holder.kill()
        holder.wait()
    lock = WorkDirLock(str(tmp_path)).acquire()
    assert lock.stale_holder.startswith(f'pid {holder.pid}')
    lock.release()


def test_a_forked_child_does_not_keep_the_work_dir_locked(tmp_path):
    """A data loader worker outliving its killed trainer must not block the resume."""
    read_end, write_end = os.pipe()
    trainer = os.fork()
    if trainer == 0:  # the trainer: lock, fork a long-lived worker, die
        WorkDirLock(str(tmp_path)).acquire()
        worker = os.fork()
        if worker == 0:
            time.sleep(30)
            os._exit(0)
        os.write(write_end, str(worker).encode())
        os.kill(os.getpid(), signal.SIGKILL)
    os.close(write_end)
    worker = int(os.read(read_end, 32))
    os.waitpid(trainer, 0)
    try:
        os.kill(worker, 0)  # still alive
        lock = WorkDirLock(str(tmp_path)).acquire()
        lock.release()
    finally:
        os.kill(worker, signal.SIGKILL)


def test_a_second_training_run_in_the_same_work_dir_gets_one_line(tmp_path):
    generate_coco_shapes(str(tmp_path / 'data' / 'coco_shapes'), num_train=4, num_val=2, size_range=(64, 80), seed=4)
    options = [
        '--cfg-options',
        'train_cfg.max_iters=100000',
        'train_dataloader.batch_size=1',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
    ]
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    first = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, 'tools', 'train.py'), DEMO, '--work-dir', 'work', *options],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        lock_file = tmp_path / 'work' / LOCK_NAME

        def started():  # holds the lock and has made its log folder
            return lock_file.exists() and lock_file.read_text() and any(p.is_dir() for p in lock_file.parent.iterdir())

        while not started() and time.monotonic() < deadline:
            assert first.poll() is None, 'the first run ended early'
            time.sleep(0.2)
        logs_before = sorted(path.name for path in (tmp_path / 'work').iterdir() if path.is_dir())
        second = run_tool('train.py', DEMO, '--work-dir', 'work', *options, cwd=str(tmp_path))
        assert first.poll() is None, 'the first run did not outlive the second'
    finally:
        first.kill()
        first.wait()
    assert second.returncode == 2, second.stderr[-2000:]
    errors = [line for line in second.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and 'Traceback' not in second.stderr, second.stderr[-2000:]
    assert re.fullmatch(
        re.escape(f"error: work dir '{tmp_path / 'work'}' is in use by pid {first.pid} (since ")
        + r'[\d-]+ [\d:]+\); pass another --work-dir, or wait for that run to end',
        errors[0],
    ), errors[0]
    # The refused run made no log folder of its own and touched none of the first run's files.
    assert sorted(path.name for path in (tmp_path / 'work').iterdir() if path.is_dir()) == logs_before
