"""The backbone comparison: SwinBackbone against MMDetection's and MMSegmentation's
SwinTransformer, part by part, into one report and one JSON file.

All backbones run in one process, with the same weights and the same inputs,
interleaved run by run (the order rotates every round); a figure is the median over
``repeats`` runs after ``warmup`` runs. Parts:

* ``complexity``: parameters and FLOPs of each backbone (:mod:`.flops`: multiply-adds of
  the path each runs).
* ``backbones``: inference latency (batch 1, detection and segmentation sizes),
  throughput, one training step and its peak memory, with and without activation
  checkpointing (:mod:`.peers`).
* ``floor``: every matrix product the backbone's inference pass runs, timed alone at the
  same shapes with preallocated outputs, in the same run; the same for one training step
  (:mod:`.floor`).
* ``profile``: profiler self time per group of operators, minor page faults and system
  time of one inference pass (:mod:`.profile`).
* ``models``: the whole Mask R-CNN and UperNet of the configs, with our backbone and with
  the peer's (:mod:`.whole_models`).
* ``scaling``: inference time against input size, with a plain global-attention ViT
  encoder for comparison, and a PNG plot (:mod:`.scaling`).
* ``compile``: ``torch.compile(dynamic=True)`` against eager (opt-in).

Peak memory of a training step: on CUDA ``torch.cuda.max_memory_allocated``; on a CPU
the peak of the running sum of tensor allocations and frees recorded by the PyTorch
profiler. Both exclude what existed before the step; peak RSS is not used (it counts
the allocator's cached pages, not tensors).
"""

from __future__ import annotations

import importlib
import json
import os

from mmswin.errors import PreflightError

# Part -> 'module.function' of mmswin.analysis that measures it, in the order they run.
PARTS = {
    'complexity': 'peers.bench_complexity',
    'backbones': 'peers.bench_backbones',
    'floor': 'floor.bench_floor',
    'profile': 'profile.bench_profile',
    'models': 'whole_models.bench_models',
    'scaling': 'scaling.bench_scaling',
    'compile': 'peers.bench_compile',
}
ALL_PARTS = tuple(PARTS)
DEFAULT_PARTS = tuple(part for part in PARTS if part != 'compile')  # compile: opt-in, inductor takes minutes
DTYPE_NAMES = ('fp32', 'bf16', 'fp16')


def apply_quick(args) -> None:
    """``--quick``: a small Swin, tiny sizes and one repeat; checks every part runs."""
    from .peers import QUICK_ARCH

    args.arch = QUICK_ARCH
    args.det_size, args.seg_size, args.train_size = (64, 96), (64, 64), (64, 64)
    args.scaling_sizes = (32, 48, 64)
    args.warmup = args.model_warmup = 0
    args.repeats = args.model_repeats = args.scaling_repeats = 1
    args.throughput_batch = 2


def check_comparison_args(args) -> None:
    """One-line :class:`PreflightError` for a bad flag, before any measurement."""
    from mmswin.engine.preflight import check_output_file

    for flag, rate in (
        ('--drop-path-rate', args.drop_path_rate),
        ('--train-drop-path-rate', args.train_drop_path_rate),
    ):
        if not 0.0 <= rate < 1.0:
            raise PreflightError(f'{flag} must be in [0, 1), got {rate}')
    if args.device == 'cuda':
        import torch

        if not torch.cuda.is_available():
            raise PreflightError('--device cuda: CUDA is not available; use --device cpu')
    for flag, path, example in (('--json', args.json, 'benchmark.json'), ('--plot', args.plot, 'scaling.png')):
        if path:  # found now, not after half an hour of measuring
            check_output_file(path, flag, example)


def run_comparison(args) -> dict:
    """Measure ``args.parts``, print the report, write ``args.json``; returns the results."""
    import torch

    from .report import format_report
    from .timing import DTYPES, Bench, environment, keep_freed_memory

    if args.quick:
        apply_quick(args)
    check_comparison_args(args)
    if args.keep_freed_memory:
        keep_freed_memory()
    torch.set_num_threads(args.threads)
    bench = Bench(args.device, DTYPES[args.dtype], args.warmup, args.repeats)
    results: dict = dict(environment=environment(args), settings=dict(vars(args)))
    for part, measure in PARTS.items():
        if part in args.parts:
            module, function = measure.split('.')
            results[part] = getattr(importlib.import_module(f'.{module}', __package__), function)(args, bench)
    results['environment']['load_average_end'] = os.getloadavg()
    print(format_report(results))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1, default=str)
        print(f'\nresults: {args.json}')
    return results
