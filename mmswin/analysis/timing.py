"""Timing, memory and the run's environment, shared by every benchmark part."""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import statistics
import sys
import time
from typing import Callable, Optional

import torch

from mmswin.errors import PreflightError

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}


# /proc/cpuinfo flags that decide how fast the matrix products can be (bf16 among them).
SIMD_FLAG_PREFIXES = ('avx', 'amx', 'fma', 'sse4')


class Bench:
    """Device, dtype and repeat counts shared by every measurement."""

    def __init__(self, device: str, dtype: torch.dtype, warmup: int, repeats: int):
        self.device = torch.device(device)
        self.dtype = dtype
        self.warmup = warmup
        self.repeats = repeats

    def sync(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize()

    def autocast(self):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def interleaved(
        self, runs: dict[str, Callable[[], object]], warmup: Optional[int] = None, repeats: Optional[int] = None
    ) -> dict[str, dict]:
        """Time each callable ``repeats`` times, one run of each per round, the order
        rotating every round. Returns per name the median (s), the runs (s), and the
        median CPU utilisation (process CPU time / wall time / threads; CPU only) that
        shows whether other processes competed for the cores."""
        warmup = self.warmup if warmup is None else warmup
        repeats = self.repeats if repeats is None else repeats
        names = list(runs)
        gc.collect()
        for _ in range(warmup):
            for name in names:
                runs[name]()
        self.sync()
        times: dict[str, list] = {name: [] for name in names}
        usage: dict[str, list] = {name: [] for name in names}
        foreign: dict[str, list] = {name: [] for name in names}
        for round_index in range(repeats):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                machine_start, cpu_start, start = machine_busy_s(), time.process_time(), time.perf_counter()
                runs[name]()
                self.sync()
                wall = time.perf_counter() - start
                own = time.process_time() - cpu_start
                times[name].append(wall)
                usage[name].append(own / wall / torch.get_num_threads())
                if machine_start is not None:
                    foreign[name].append(max(0.0, machine_busy_s() - machine_start - own) / wall / os.cpu_count())
        return {
            name: dict(
                median_s=statistics.median(times[name]),
                runs_s=times[name],
                cpu_utilisation=None if self.device.type == 'cuda' else statistics.median(usage[name]),
                other_processes_cpu_share=max(foreign[name]) if foreign[name] else None,
            )
            for name in names
        }

    def peak_memory(self, step: Callable[[], object]) -> int:
        """Peak bytes of tensor memory allocated while ``step`` runs, beyond what was
        allocated before it (see the module docstring for the method)."""
        gc.collect()
        if self.device.type == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            step()
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() - before
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            step()
        running = peak = 0
        for event in sorted(prof.events(), key=lambda e: e.time_range.start):
            running += event.self_cpu_memory_usage
            peak = max(peak, running)
        return peak


def machine_busy_s() -> Optional[float]:
    """CPU seconds all processes have used so far (Linux ``/proc/stat``), else None."""
    try:
        with open('/proc/stat') as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf('SC_CLK_TCK')


def memory_method(device: torch.device) -> str:
    if device.type == 'cuda':
        return 'torch.cuda.max_memory_allocated() during the step, minus what was allocated before it'
    return (
        'CPU tensor-level accounting: peak of the running sum of tensor allocations and frees recorded by '
        'torch.profiler (profile_memory=True) during the step; weights and input excluded; not peak RSS'
    )


def keep_freed_memory() -> None:
    """Have glibc's malloc serve every allocation from the heap and never hand freed memory
    back to the OS: a freed tensor's pages are reused by the next one instead of being
    unmapped and faulted in again. Process-wide: it changes every backbone's runs alike."""
    import ctypes
    import ctypes.util

    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    library = ctypes.util.find_library('c')
    libc = ctypes.CDLL(library) if library else None
    if platform.libc_ver()[0] != 'glibc' or libc is None or not hasattr(libc, 'mallopt'):
        raise PreflightError('--keep-freed-memory needs glibc (Linux); run without it')
    if not (libc.mallopt(M_MMAP_THRESHOLD, 2**30) and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)):
        raise PreflightError('--keep-freed-memory: glibc refused mallopt; run without it')


def size_key(size) -> str:
    return f'{size[0]}x{size[1]}'


def log(message: str) -> None:
    print(f'[benchmark {time.strftime("%H:%M:%S")}] {message}', file=sys.stderr, flush=True)


def environment(args) -> dict:
    import mmdet
    import mmengine
    import mmseg

    cpu = platform.processor() or platform.machine()
    flags: list = []
    with contextlib.suppress(OSError):
        with open('/proc/cpuinfo') as f:
            info = f.read().splitlines()
        cpu = next((line.split(':', 1)[1].strip() for line in info if line.startswith('model name')), cpu)
        # Under a hypervisor the name can be as bare as 'AMD EPYC': family and model tell
        # the generations apart (AMD family 25 is Zen 3/4, family 26 Zen 5).
        fields: dict = {}
        for key, _, value in (line.partition(':') for line in info):
            fields.setdefault(key.strip(), value.strip())  # the first processor's
        if 'cpu family' in fields and 'model' in fields:
            cpu = f'{cpu} (family {fields["cpu family"]}, model {fields["model"]})'
        all_flags = next((line.split(':', 1)[1].split() for line in info if line.startswith('flags')), [])
        flags = sorted(flag for flag in all_flags if flag.startswith(SIMD_FLAG_PREFIXES))
    return dict(
        torch=torch.__version__,
        mmengine=mmengine.__version__,
        mmdet=mmdet.__version__,
        mmseg=mmseg.__version__,
        device=args.device,
        dtype=args.dtype,
        threads=torch.get_num_threads(),
        keep_freed_memory=args.keep_freed_memory,
        cpu=cpu,
        cpu_simd_flags=flags,
        native_bf16=any(flag in flags for flag in ('amx_bf16', 'avx512_bf16')),
        cuda=torch.cuda.get_device_name() if args.device == 'cuda' else None,
        date=time.strftime('%Y-%m-%d %H:%M:%S'),
        load_average=os.getloadavg(),
    )


def contention_note(timings: list) -> str:
    """One line on whether other processes competed for the CPUs during the timed runs."""
    usage = [t['cpu_utilisation'] for t in timings if t.get('cpu_utilisation') is not None]
    foreign = [t['other_processes_cpu_share'] for t in timings if t.get('other_processes_cpu_share') is not None]
    if not usage:
        return ''
    note = f'CPU utilisation of the timed runs {min(usage):.2f}-{max(usage):.2f} (1.0: every thread busy)'
    if foreign:
        note += f'; other processes used at most {100 * max(foreign):.0f}% of the CPUs during a run'
    return note
