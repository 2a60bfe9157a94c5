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
