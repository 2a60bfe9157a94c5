"""Benchmark SwinBackbone against MMDetection's and MMSegmentation's SwinTransformer.

    python tools/benchmark.py                                  # every part, CPU fp32, 2 threads
    python tools/benchmark.py --parts backbones floor          # some parts
    python tools/benchmark.py --quick                          # tiny sizes: a smoke run

All backbones run in one process, with the same weights and the same inputs,
interleaved run by run (the order rotates every round); a figure is the median over
``--repeats`` runs after ``--warmup`` runs. Parts (``--parts``):

* ``complexity``: parameters and FLOPs of each backbone (MMEngine's FlopAnalyzer;
  multiply-adds, the convention of the Swin paper and of OpenMMLab's tables).
* ``backbones``: inference latency (batch 1, detection and segmentation sizes),
  throughput (images/s at ``--throughput-batch``), one training step (forward +
  backward, ``--train-batch`` at ``--train-size``) and its peak memory, with and
  without activation checkpointing.
* ``floor``: every matrix product the backbone's inference pass runs (linear layers,
  and two batched matmuls per window attention), timed alone at the same shapes with
  preallocated outputs, in the same run: the floor its time is compared with. The same
  for one training step (forward and backward products), ours and MMDetection's.
* ``profile``: for ours and MMDetection's backbone, one inference pass at the
  detection size: profiler self time per group of operators (matrix products, fused
  attention, GELU, copies, ...) and the pass's minor page faults and system time.
* ``models``: the same for the whole Mask R-CNN and UperNet models built from the
  project's configs, with our backbone and with the peer's.
* ``scaling``: inference time from ``--scaling-sizes`` (square) for SwinBackbone and
  for a plain ViT encoder of global attention (DeiT-S shape: width 384 = Swin-T's
  stage-3 width, depth 12, patch 16); linear and power-law fits, and a PNG plot.

Peak memory of a training step: on CUDA ``torch.cuda.max_memory_allocated``; on a CPU
the peak of tensor memory allocated during the step, from the PyTorch profiler's
allocation records (``profile_memory=True``: the running sum of every allocation and
free, in order). Both exclude what existed before the step (weights, input). Peak RSS
is not used: it counts the allocator's cached pages, not tensors.

Prints a table and writes everything to ``--json``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from typing import Callable, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from mmswin.engine.preflight import check_output_file  # noqa: E402
from mmswin.errors import PreflightError  # noqa: E402
from mmswin.models import SwinBackbone  # noqa: E402
from mmswin.models.backbones.swin import ARCH_ZOO, _resolve_arch  # noqa: E402

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}
# /proc/cpuinfo flags that decide how fast the matrix products can be (bf16 among them).
SIMD_FLAG_PREFIXES = ('avx', 'amx', 'fma', 'sse4')
OURS, MMDET, MMSEG = 'mmswin', 'mmdet', 'mmseg'
DEFAULT_PARTS = ('complexity', 'backbones', 'floor', 'profile', 'models', 'scaling')
ALL_PARTS = DEFAULT_PARTS + ('compile',)  # compile: opt-in, inductor takes minutes on 2 cores
# --quick: a small Swin (every stage has a regular and a shifted block) for smoke runs.
QUICK_ARCH = dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))


# ---------------------------------------------------------------------------------------
# Timing and memory


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


# ---------------------------------------------------------------------------------------
# Backbones


def arch_kwargs(arch: str) -> dict:
    embed_dims, depths, num_heads = _resolve_arch(arch)
    return dict(embed_dims=embed_dims, depths=depths, num_heads=num_heads)


def build_backbones(arch: str, drop_path_rate: float, with_cp: bool = False, seed: int = 0) -> dict[str, nn.Module]:
    """SwinBackbone, MMDetection's and MMSegmentation's SwinTransformer holding the same
    weights (MMDetection's init, loaded into the others through their own loaders)."""
    from mmdet.models.backbones.swin import SwinTransformer as DetSwin
    from mmengine.logging import MMLogger
    from mmseg.models.backbones.swin import SwinTransformer as SegSwin

    torch.manual_seed(seed)
    kwargs = dict(arch_kwargs(arch), drop_path_rate=drop_path_rate, with_cp=with_cp)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('ERROR')  # "no pretrained weights" / "loaded N tensors" notes
    try:
        det = DetSwin(**kwargs)
        det.init_weights()
        seg = SegSwin(**kwargs)
        seg.load_state_dict(det.state_dict())
        ours = SwinBackbone(arch=arch, drop_path_rate=drop_path_rate, with_cp=with_cp)
        ours.load_state_dict(det.state_dict())
    finally:
        logger.setLevel(level)
    return {OURS: ours, MMDET: det, MMSEG: seg}


def training_step(model: nn.Module, x: Tensor, bench: Bench) -> Callable[[], None]:
    """Forward + backward of the sum of the output maps' means; gradients reset first."""

    def step():
        for param in model.parameters():
            param.grad = None
        with bench.autocast():
            outs = model(x)
            loss = sum(out.float().mean() for out in outs)
        loss.backward()

    return step


def inference_run(model: nn.Module, x: Tensor, bench: Bench) -> Callable[[], None]:

    def run():
        with torch.no_grad(), bench.autocast():
            model(x)

    return run


def bench_backbones(args, bench: Bench) -> dict:
    result: dict = dict(settings=dict(arch=args.arch, drop_path_rate=args.drop_path_rate))
    models = build_backbones(args.arch, args.drop_path_rate)
    for model in models.values():
        model.to(bench.device).eval()
    generator = torch.Generator().manual_seed(1)

    def image(batch: int, size) -> Tensor:
        return torch.randn(batch, 3, *size, generator=generator).to(bench.device)

    result['inference'] = {}
    for size in (args.det_size, args.seg_size):
        x = image(1, size)
        log(f'inference, batch 1, {size[0]}x{size[1]}')
        result['inference'][size_key(size)] = bench.interleaved(
            {k: inference_run(m, x, bench) for k, m in models.items()}
        )
    x = image(args.throughput_batch, args.seg_size)
    log(f'throughput, batch {args.throughput_batch}, {size_key(args.seg_size)}')
    timed = bench.interleaved({k: inference_run(m, x, bench) for k, m in models.items()})
    result['throughput'] = dict(
        batch=args.throughput_batch,
        size=size_key(args.seg_size),
        images_per_s={k: args.throughput_batch / v['median_s'] for k, v in timed.items()},
        timing=timed,
    )

    x = image(args.train_batch, args.train_size)
    for model in models.values():
        model.train()
    log(f'training step, batch {args.train_batch}, {size_key(args.train_size)}')
    result['train_step'] = timed_training_steps(models, x, args.drop_path_rate, args, bench)
    memory = {k: bench.peak_memory(training_step(m, x, bench)) for k, m in models.items()}
    del models
    if args.train_drop_path_rate > 0:
        # As trained: stochastic depth draws per image whether a block's branch runs, and
        # ours skips the work of a dropped branch where the peers multiply it by zero.
        dropping = build_backbones(args.arch, args.train_drop_path_rate)
        for model in dropping.values():
            model.to(bench.device).train()
        log(f'training step with drop_path_rate={args.train_drop_path_rate}')
        result['train_step_drop_path'] = timed_training_steps(dropping, x, args.train_drop_path_rate, args, bench)
        del dropping
    checkpointed = build_backbones(args.arch, args.drop_path_rate, with_cp=True)
    for name, model in checkpointed.items():
        model.to(bench.device).train()
        memory[f'{name}_with_cp'] = bench.peak_memory(training_step(model, x, bench))
    result['train_memory'] = dict(method=memory_method(bench.device), peak_bytes=memory)
    result['ratios'] = backbone_ratios(result)
    return result


def timed_training_steps(models: dict, x: Tensor, drop_path_rate: float, args, bench: Bench) -> dict:
    """One training-step entry of the backbones part: the models' steps, interleaved."""
    return dict(
        batch=args.train_batch,
        size=size_key(args.train_size),
        drop_path_rate=drop_path_rate,
        timing=bench.interleaved({k: training_step(m, x, bench) for k, m in models.items()}),
    )


TRAIN_STEP_KEYS = ('train_step', 'train_step_drop_path')


def backbone_ratios(result: dict) -> dict:
    """Speed-ups (peer time / our time) and memory ratios (ours / peer's)."""
    ratios: dict = {}
    for peer in (MMDET, MMSEG):
        entry = {}
        for size, timed in result['inference'].items():
            entry[f'inference_{size}_speedup'] = timed[peer]['median_s'] / timed[OURS]['median_s']
        entry['throughput_speedup'] = (
            result['throughput']['images_per_s'][OURS] / result['throughput']['images_per_s'][peer]
        )
        for key in TRAIN_STEP_KEYS:
            if key in result:
                timed = result[key]['timing']
                entry[f'{key}_speedup'] = timed[peer]['median_s'] / timed[OURS]['median_s']
        memory = result['train_memory']['peak_bytes']
        entry['train_memory_ratio'] = memory[OURS] / memory[peer]
        entry['train_memory_ratio_with_cp_vs_peer'] = memory[f'{OURS}_with_cp'] / memory[peer]
        entry['train_memory_ratio_with_cp_vs_peer_with_cp'] = memory[f'{OURS}_with_cp'] / memory[f'{peer}_with_cp']
        ratios[f'vs_{peer}'] = entry
    return ratios


# ---------------------------------------------------------------------------------------
# Complexity


def sdpa_flop_jit(inputs: list, outputs: list) -> int:
    """FlopAnalyzer rule for ``scaled_dot_product_attention``: its two batched matrix
    products, ``q @ k^T`` and ``weights @ v`` (multiply-adds)."""
    from mmengine.analysis.jit_handles import get_shape

    q_shape, k_shape, v_shape = (get_shape(value) for value in inputs[:3])
    batch = math.prod(q_shape[:-2])
    return batch * q_shape[-2] * k_shape[-2] * (q_shape[-1] + v_shape[-1])


def baddbmm_flop_jit(inputs: list, outputs: list) -> int:
    """FlopAnalyzer rule for ``baddbmm`` (our CPU window attention: bias + q @ k^T): its
    batched product (multiply-adds), as MMEngine counts ``bmm``."""
    from mmengine.analysis.jit_handles import get_shape

    batch, rows, inner = get_shape(inputs[1])
    return batch * rows * inner * get_shape(inputs[2])[-1]


_flop_counts: dict = {}


def count_backbone(model: nn.Module, size) -> int:
    """Multiply-adds of one inference pass at batch 1, of the path each model runs
    (MMEngine FlopAnalyzer, plus a rule for fused attention, which it lacks). Counted
    once per model class and size."""
    key = (type(model).__name__, type(model).__module__, tuple(size))
    if key not in _flop_counts:
        _flop_counts[key] = _count_backbone(model, size)
    return _flop_counts[key]


def _count_backbone(model: nn.Module, size) -> int:
    from mmengine.analysis import FlopAnalyzer
    from mmengine.analysis.jit_handles import addmm_flop_jit

    model = copy.deepcopy(model).cpu()
    model.eval()  # (MMDetection's train() returns None)
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        analyzer = FlopAnalyzer(model, (x,)).set_op_handle(
            'aten::scaled_dot_product_attention',
            sdpa_flop_jit,
            'aten::addmm_',  # our residual adds fused into the products
            addmm_flop_jit,
            'aten::baddbmm',  # our CPU window attention's scores
            baddbmm_flop_jit,
        )
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings('none')
        return int(analyzer.total())


def bench_complexity(args, bench: Bench) -> dict:
    models = build_backbones(args.arch, args.drop_path_rate)
    log('complexity (MMEngine FlopAnalyzer)')
    return dict(
        params={k: sum(p.numel() for p in m.parameters()) for k, m in models.items()},
        flops={
            size_key(size): {k: count_backbone(m, size) for k, m in models.items()}
            for size in (args.det_size, args.seg_size)
        },
        flops_unit='multiply-adds (MMEngine FlopAnalyzer, with a rule for fused attention)',
    )


# ---------------------------------------------------------------------------------------
# Floor: the backbone's matrix products alone


class MatmulRecorder(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the shape of every matrix product an inference pass runs: ``(M, K, N)``
    for mm/addmm/addmm_ (linear layers), ``(batch, M, K, N)`` for bmm, and fused
    attention as its two batched products (``q @ k^T`` and ``weights @ v``).

    Also records the element-wise work no implementation can skip (``elementwise``):
    every GELU, every layer norm, and the softmax of every attention (inside fused
    attention too), as ``('gelu', n)``, ``('layer_norm', rows, C)``, ``('softmax', rows, N)``."""

    def __init__(self):
        super().__init__()
        self.products: list[tuple] = []
        self.elementwise: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name in ('mm', 'addmm', 'addmm_'):
            a, b = (args[0], args[1]) if name == 'mm' else (args[1], args[2])
            self.products.append(('linear', a.shape[0], a.shape[1], b.shape[1], name != 'mm'))
        elif name in ('bmm', 'baddbmm'):
            a, b = (args[0], args[1]) if name == 'bmm' else (args[1], args[2])
            self.products.append(('bmm', a.shape[0], a.shape[1], a.shape[2], b.shape[2]))
        elif name.startswith('_scaled_dot_product'):
            q, k = args[0], args[1]
            batch = math.prod(q.shape[:-2])
            self.products.append(('bmm', batch, q.shape[-2], q.shape[-1], k.shape[-2]))  # q @ k^T
            self.products.append(('bmm', batch, q.shape[-2], k.shape[-2], q.shape[-1]))  # weights @ v
            self.elementwise.append(('softmax', batch * q.shape[-2], k.shape[-2]))
        elif name in ('gelu', 'gelu_'):
            self.elementwise.append(('gelu', args[0].numel()))
        elif name == 'native_layer_norm':
            channels = math.prod(args[1])
            self.elementwise.append(('layer_norm', args[0].numel() // channels, channels))
        elif name in ('_softmax', 'softmax'):
            self.elementwise.append(('softmax', args[0].numel() // args[0].shape[args[1]], args[0].shape[args[1]]))
        return func(*args, **kwargs)


def record_matmuls(run: Callable[[], object]) -> MatmulRecorder:
    """The matrix products (and element-wise work) one call of ``run`` makes (an
    inference pass or a training step)."""
    recorder = MatmulRecorder()
    with recorder:
        run()
    return recorder


def timed_against_own_products(
    runs: dict[str, Callable[[], object]], bench: Bench, elementwise: bool = False
) -> tuple[dict, dict]:
    """Times each run and, interleaved with them, its own matrix products alone
    (``'<name>_matmuls'``) and, with ``elementwise``, its GELUs, layer norms and
    softmaxes alone (``'<name>_elementwise'``). Returns the
    timings and the recorded products per name."""
    records = {name: record_matmuls(run) for name, run in runs.items()}
    floors = {}
    for name, record in records.items():
        floors[f'{name}_matmuls'] = matmul_floor(record.products, bench.device, bench.dtype)
        if elementwise:
            floors[f'{name}_elementwise'] = elementwise_floor(record.elementwise, bench.device, bench.dtype)
    return bench.interleaved({**runs, **floors}), {name: record.products for name, record in records.items()}


def matmul_floor(products: list[tuple], device: torch.device, dtype: torch.dtype) -> Callable[[], None]:
    """A callable that runs the recorded products alone: random operands, outputs
    preallocated (one buffer per shape), linear layers as ``addmm(bias, x, W.T)``."""
    operands: dict = {}

    def tensors(shape_key):
        if shape_key not in operands:
            kind = shape_key[0]
            options = dict(device=device, dtype=dtype)
            if kind == 'linear':
                _, m, k, n, has_bias = shape_key
                operands[shape_key] = (
                    torch.randn(m, k, **options),
                    torch.randn(n, k, **options).t(),
                    torch.randn(n, **options),
                    torch.empty(m, n, **options),
                )
            else:
                _, batch, m, k, n = shape_key
                operands[shape_key] = (
                    torch.randn(batch, m, k, **options),
                    torch.randn(batch, n, k, **options).transpose(1, 2),
                    torch.empty(batch, m, n, **options),
                )
        return operands[shape_key]

    calls = []
    for key in products:
        ops = tensors(key)
        if key[0] == 'bmm':
            calls.append(lambda a=ops[0], b=ops[1], out=ops[2]: torch.bmm(a, b, out=out))
        elif key[4]:
            calls.append(lambda a=ops[0], b=ops[1], bias=ops[2], out=ops[3]: torch.addmm(bias, a, b, out=out))
        else:
            calls.append(lambda a=ops[0], b=ops[1], out=ops[3]: torch.mm(a, b, out=out))

    def run():
        for call in calls:
            call()

    return run


def elementwise_floor(ops: list[tuple], device: torch.device, dtype: torch.dtype) -> Callable[[], None]:
    """A callable that runs the recorded GELUs, layer norms and softmaxes alone, each
    on its own random operand into a preallocated output (layer norm allocates)."""
    operands: dict = {}
    calls = []
    for key in ops:
        if key not in operands:
            shape = key[1:] if key[0] != 'gelu' else (key[1],)
            operands[key] = (
                torch.randn(*shape, device=device, dtype=dtype),
                torch.empty(*shape, device=device, dtype=dtype),
            )
            if key[0] == 'layer_norm':
                operands[key] += (
                    torch.ones(key[2], device=device, dtype=dtype),
                    torch.zeros(key[2], device=device, dtype=dtype),
                )
        ops_for_key = operands[key]
        if key[0] == 'gelu':
            calls.append(lambda a=ops_for_key[0], out=ops_for_key[1]: torch.ops.aten.gelu.out(a, out=out))
        elif key[0] == 'softmax':
            calls.append(lambda a=ops_for_key[0], out=ops_for_key[1]: torch.softmax(a, -1, out=out))
        else:
            calls.append(
                lambda a=ops_for_key[0], w=ops_for_key[2], b=ops_for_key[3]: F.layer_norm(a, a.shape[-1:], w, b)
            )

    def run():
        for call in calls:
            call()

    return run


def product_flops(products: list[tuple]) -> int:
    """Floating-point operations (2 per multiply-add) of the recorded products."""
    total = 0
    for key in products:
        if key[0] == 'linear':
            total += 2 * key[1] * key[2] * key[3]
        else:
            total += 2 * key[1] * key[2] * key[3] * key[4]
    return total


def bench_floor(args, bench: Bench) -> dict:
    """Each backbone's inference time at the detection size against the time of its
    own matrix products alone, measured interleaved in the same run."""
    models = build_backbones(args.arch, args.drop_path_rate)
    size = args.det_size
    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(1)).to(bench.device)
    for model in models.values():
        model.to(bench.device).eval()
    log(f'floor: backbones and their matrix products alone, {size_key(size)}')
    runs = {k: inference_run(m, x, bench) for k, m in models.items()}
    timed, products = timed_against_own_products(runs, bench, elementwise=True)
    flops = {k: count_backbone(m, size) for k, m in models.items()}
    result = dict(size=size_key(size), timing=timed, model_flops_multiply_adds=flops)
    for name in models:
        model_time = timed[name]['median_s']
        floor_time = timed[f'{name}_matmuls']['median_s']
        elementwise_time = timed[f'{name}_elementwise']['median_s']
        essential_time = floor_time + elementwise_time
        matmul_flops = product_flops(products[name])
        result[name] = dict(
            time_s=model_time,
            matmuls_alone_s=floor_time,
            time_over_own_floor=model_time / floor_time,
            elementwise_alone_s=elementwise_time,
            essential_alone_s=essential_time,
            essential_over_own_floor=essential_time / floor_time,
            time_over_mmswin_floor=model_time / timed[f'{OURS}_matmuls']['median_s'],
            num_matmuls=len(products[name]),
            matmul_gflop=matmul_flops / 1e9,
            model_gflop_per_s=2 * flops[name] / model_time / 1e9,
            matmul_gflop_per_s=matmul_flops / floor_time / 1e9,
        )
    result['train'] = train_step_floor(args, bench, {k: models[k] for k in (OURS, MMDET)})
    return result


def train_step_floor(args, bench: Bench, models: dict[str, nn.Module]) -> dict:
    """The training step's time against its matrix products alone (forward and
    backward, recorded during one step), for ours and MMDetection's: how much of the
    step is overhead that a faster backbone could remove."""
    x = torch.randn(args.train_batch, 3, *args.train_size, generator=torch.Generator().manual_seed(2))
    x = x.to(bench.device)
    for model in models.values():
        model.train()
    log(f'floor: training steps and their matrix products alone, batch {args.train_batch}, {size_key(args.train_size)}')
    timed, products = timed_against_own_products({k: training_step(m, x, bench) for k, m in models.items()}, bench)
    result: dict = dict(size=size_key(args.train_size), batch=args.train_batch, timing=timed)
    for name in models:
        step_time, floor_time = timed[name]['median_s'], timed[f'{name}_matmuls']['median_s']
        result[name] = dict(
            time_s=step_time,
            matmuls_alone_s=floor_time,
            overhead_s=step_time - floor_time,
            time_over_own_floor=step_time / floor_time,
            num_matmuls=len(products[name]),
            matmul_gflop=product_flops(products[name]) / 1e9,
        )
    return result


# ---------------------------------------------------------------------------------------
# Profile: where an inference pass spends its time

OP_GROUPS = (
    ('matrix products', ('aten::mm', 'aten::addmm', 'aten::addmm_', 'aten::bmm', 'aten::baddbmm')),
    (
        'fused attention',
        tuple(
            f'aten::_scaled_dot_product_{k}'
            for k in ('flash_attention_for_cpu', 'flash_attention', 'efficient_attention', 'cudnn_attention')
        ),
    ),
    ('softmax', ('aten::_softmax', 'aten::softmax')),
    ('GELU', ('aten::gelu', 'aten::gelu_')),
    ('layer norm', ('aten::native_layer_norm',)),
    (
        'copies (pad, roll, gather, partition)',
        (
            'aten::copy_',
            'aten::index_select',
            'aten::index_copy_',
            'aten::constant_pad_nd',
            'aten::roll',
            'aten::cat',
            'aten::index',
            'aten::fill_',
            'aten::zero_',
        ),
    ),
)


def bench_profile(args, bench: Bench) -> dict:
    """For ours and MMDetection's backbone, one inference pass at the detection size:
    the profiler's self time per group of operators, and (Linux) the minor page faults
    and system time of a pass, which show how much fresh memory it touches."""
    import resource

    from torch.profiler import ProfilerActivity, profile

    models = {k: m for k, m in build_backbones(args.arch, args.drop_path_rate).items() if k in (OURS, MMDET)}
    x = torch.randn(1, 3, *args.det_size, generator=torch.Generator().manual_seed(3)).to(bench.device)
    log(f'profile: inference, batch 1, {size_key(args.det_size)}')
    cuda = bench.device.type == 'cuda'
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    result: dict = dict(size=size_key(args.det_size), unit='ms of self time (CPU, or CUDA on a GPU)')
    for name, model in models.items():
        model.to(bench.device).eval()  # (MMDetection's train()/eval() return None: no chaining)
        run = inference_run(model, x, bench)
        run()
        bench.sync()
        before = resource.getrusage(resource.RUSAGE_SELF)
        run()
        bench.sync()
        after = resource.getrusage(resource.RUSAGE_SELF)
        with profile(activities=activities) as prof:
            run()
            bench.sync()
        self_ms = {
            e.key: (e.self_device_time_total if cuda else e.self_cpu_time_total) / 1e3 for e in prof.key_averages()
        }
        total = sum(self_ms.values())
        groups = {group: sum(self_ms.get(op, 0.0) for op in ops) for group, ops in OP_GROUPS}
        groups['everything else'] = total - sum(groups.values())
        result[name] = dict(
            total_ms=total,
            groups_ms=groups,
            minor_page_faults=after.ru_minflt - before.ru_minflt,
            system_time_s=after.ru_stime - before.ru_stime,
        )
    return result


# ---------------------------------------------------------------------------------------
# Whole models from the configs


def build_from_config(cfg, backbone: Optional[dict] = None) -> nn.Module:
    """The config's model with random weights (no pretrained file read), SyncBN as BN;
    ``backbone`` replaces the config's backbone."""
    import importlib

    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import DefaultScope

    from mmswin.engine.setup_runner import adapt_to_hardware, register_scope

    register_scope(cfg)
    cfg = copy.deepcopy(cfg)
    adapt_to_hardware(cfg, 'none')
    cfg.model.backbone.init_cfg = None
    if backbone is not None:
        cfg.model.backbone = backbone
    registry = importlib.import_module(f'{cfg.default_scope}.registry').MODELS
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = registry.build(cfg.model)
    return revert_sync_batchnorm(model)


def peer_backbone_cfg(cfg, peer_type: str, with_cp: bool = False) -> dict:
    ours = cfg.model.backbone
    arch = ours.get('arch', 'tiny')
    return dict(
        type=peer_type,
        **(arch_kwargs(arch) if isinstance(arch, str) else dict(arch)),
        window_size=ours.get('window_size', 7),
        drop_path_rate=ours.get('drop_path_rate', 0.1),
        out_indices=tuple(ours.get('out_indices', (0, 1, 2, 3))),
        with_cp=with_cp,
    )


def share_weights(ours: nn.Module, peer: nn.Module) -> None:
    """Same weights in both models: the peer's backbone into ours (through our loader),
    everything else from ours into the peer."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('ERROR')
    try:
        ours.backbone.load_state_dict(peer.backbone.state_dict())
    finally:
        logger.setLevel(level)
    rest = {k: v for k, v in ours.state_dict().items() if not k.startswith('backbone.')}
    missing, unexpected = peer.load_state_dict(rest, strict=False)
    assert not unexpected and all(k.startswith('backbone.') for k in missing), (missing, unexpected)


def detection_batch(batch: int, size, num_classes: int, device: torch.device, with_targets: bool):
    """Normalised images padded to 32 and DetDataSamples (with random boxes and masks)."""
    import numpy as np
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    height, width = size
    padded = (-(-height // 32) * 32, -(-width // 32) * 32)
    generator = torch.Generator().manual_seed(2)
    inputs = torch.randn(batch, 3, *padded, generator=generator).to(device)
    samples = []
    for _ in range(batch):
        sample = DetDataSample(
            metainfo=dict(
                img_shape=(height, width),
                ori_shape=(height, width),
                pad_shape=padded,
                batch_input_shape=padded,
                scale_factor=(1.0, 1.0),
            )
        )
        if with_targets:
            corners = torch.rand(4, 2, 2, generator=generator) * torch.tensor([width, height])
            boxes = torch.cat([corners.min(1).values, corners.max(1).values + 16], dim=1)
            boxes[:, 0::2].clamp_(0, width)
            boxes[:, 1::2].clamp_(0, height)
            masks = np.zeros((4, height, width), dtype=np.uint8)
            for i, (x1, y1, x2, y2) in enumerate(boxes.round().int().tolist()):
                masks[i, y1:y2, x1:x2] = 1
            sample.gt_instances = InstanceData(
                bboxes=boxes.to(device),
                labels=torch.randint(0, num_classes, (4,), generator=generator).to(device),
                masks=BitmapMasks(masks, height, width),
            )
        samples.append(sample)
    return inputs, samples


def segmentation_batch(batch: int, size, num_classes: int, device: torch.device, with_targets: bool):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    generator = torch.Generator().manual_seed(2)
    inputs = torch.randn(batch, 3, *size, generator=generator).to(device)
    samples = []
    for _ in range(batch):
        sample = SegDataSample(metainfo=dict(img_shape=tuple(size), ori_shape=tuple(size), pad_shape=tuple(size)))
        if with_targets:
            labels = torch.randint(0, num_classes, (1, *size), generator=generator)
            sample.gt_sem_seg = PixelData(data=labels.to(device))
        samples.append(sample)
    return inputs, samples


def model_runs(model: nn.Module, batch_fn, size, batch: int, train: bool, bench: Bench) -> Callable[[], None]:
    inputs, samples = batch_fn(batch, size, with_targets=train)
    if train:

        def step():
            for param in model.parameters():
                param.grad = None
            with bench.autocast():
                losses = model.loss(inputs, samples)
            loss = sum(
                v.float().sum() if isinstance(v, Tensor) else sum(x.float().sum() for x in v)
                for k, v in losses.items()
                if 'loss' in k
            )
            loss.backward()

        return step

    def run():
        with torch.no_grad(), bench.autocast():
            model.predict(inputs, samples)

    return run


def bench_models(args, bench: Bench) -> dict:
    from mmswin.engine.setup_runner import load_config

    tasks = (
        ('mask_rcnn', args.det_config, 'mmdet.SwinTransformer', MMDET, args.det_size),
        ('upernet', args.seg_config, 'mmseg.SwinTransformer', MMSEG, args.seg_size),
    )
    result: dict = {}
    for task, path, peer_type, peer, infer_size in tasks:
        if not os.path.isfile(path):
            result[task] = dict(skipped=f'config {path} not found')
            log(f'models: {task} skipped, config {path} not found')
            continue
        cfg = load_config(path)
        ours = build_from_config(cfg)
        theirs = build_from_config(cfg, peer_backbone_cfg(cfg, peer_type))
        share_weights(ours, theirs)
        models = {OURS: ours.to(bench.device), peer: theirs.to(bench.device)}
        if task == 'mask_rcnn':
            batch_fn = functools.partial(
                detection_batch, num_classes=cfg.model.roi_head.bbox_head.num_classes, device=bench.device
            )
        else:
            batch_fn = functools.partial(
                segmentation_batch, num_classes=cfg.model.decode_head.num_classes, device=bench.device
            )
        entry: dict = dict(config=path, peer=peer)
        for model in models.values():
            model.eval()
        log(f'models: {task} inference, batch 1, {size_key(infer_size)}')
        entry['inference'] = dict(
            size=size_key(infer_size),
            timing=bench.interleaved(
                {k: model_runs(m, batch_fn, infer_size, 1, False, bench) for k, m in models.items()},
                warmup=args.model_warmup,
                repeats=args.model_repeats,
            ),
        )
        for model in models.values():
            model.train()
        log(f'models: {task} training step, batch {args.train_batch}, {size_key(args.train_size)}')
        steps = {k: model_runs(m, batch_fn, args.train_size, args.train_batch, True, bench) for k, m in models.items()}
        entry['train_step'] = dict(
            size=size_key(args.train_size),
            batch=args.train_batch,
            timing=bench.interleaved(steps, warmup=args.model_warmup, repeats=args.model_repeats),
        )
        entry['train_memory'] = dict(
            method=memory_method(bench.device), peak_bytes={k: bench.peak_memory(step) for k, step in steps.items()}
        )
        entry['params'] = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}
        if args.model_flops:
            entry['flops'] = model_flops(cfg, peer_type, infer_size)
        timing = entry['inference']['timing']
        memory = entry['train_memory']['peak_bytes']
        entry['ratios'] = dict(
            inference_speedup=timing[peer]['median_s'] / timing[OURS]['median_s'],
            train_step_speedup=entry['train_step']['timing'][peer]['median_s']
            / entry['train_step']['timing'][OURS]['median_s'],
            train_memory_ratio=memory[OURS] / memory[peer],
        )
        result[task] = entry
        del models, ours, theirs
    return result


def model_flops(cfg, peer_type: str, size) -> dict:
    """Whole-model multiply-adds through tools/get_flops.py (the project's one counter)."""
    from get_flops import count_complexity

    peer_cfg = copy.deepcopy(cfg)
    peer_cfg.model.backbone = peer_backbone_cfg(cfg, peer_type)
    ours, theirs = count_complexity(cfg, tuple(size)), count_complexity(peer_cfg, tuple(size))
    return dict(
        size=size_key(size),
        mmswin=ours.flops,
        peer=theirs.flops,
        mmswin_backbone=ours.backbone_flops,
        peer_backbone=theirs.backbone_flops,
        unit='multiply-adds',
    )


# ---------------------------------------------------------------------------------------
# Scaling against a global-attention encoder


class GlobalAttentionEncoder(nn.Module):
    """A plain ViT encoder (DeiT-S shape by default): patch embedding, then ``depth``
    pre-norm blocks of global multi-head attention (fused SDPA) and a 4x MLP."""

    def __init__(self, embed_dims: int = 384, depth: int = 12, num_heads: int = 6, patch_size: int = 16):
        super().__init__()
        self.num_heads = num_heads
        self.patch_embed = nn.Conv2d(3, embed_dims, patch_size, patch_size)
        self.blocks = nn.ModuleList(
            [
                nn.ModuleDict(
                    dict(
                        norm1=nn.LayerNorm(embed_dims),
                        qkv=nn.Linear(embed_dims, 3 * embed_dims),
                        proj=nn.Linear(embed_dims, embed_dims),
                        norm2=nn.LayerNorm(embed_dims),
                        fc1=nn.Linear(embed_dims, 4 * embed_dims),
                        fc2=nn.Linear(4 * embed_dims, embed_dims),
                    )
                )
                for _ in range(depth)
            ]
        )

    def forward(self, images: Tensor) -> Tensor:
        x = self.patch_embed(images).flatten(2).transpose(1, 2)  # [B, L, C]
        B, L, C = x.shape
        for block in self.blocks:
            q, k, v = block['qkv'](block['norm1'](x)).view(B, L, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
            attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, L, C)
            x = x + block['proj'](attended)
            x = x + block['fc2'](F.gelu(block['fc1'](block['norm2'](x))))
        return x


def linear_fit(xs: list, ys: list) -> dict:
    """Least squares ``y = a + b x`` with its R^2."""
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sxx
    intercept = mean_y - slope * mean_x
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - mean_y) ** 2 for y in ys)
    return dict(intercept=intercept, slope=slope, r2=1 - ss_res / ss_tot if ss_tot > 0 else 1.0)


def bench_compile(args, bench: Bench) -> dict:
    """``torch.compile(backbone, dynamic=True)`` (inductor) against eager: the first
    call's time (compiling), the first call at a second size (a recompile would show
    here), the graphs captured, and the compiled and eager inference times, interleaved."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    model = build_backbones(args.arch, args.drop_path_rate)[OURS].to(bench.device).eval()
    generator = torch.Generator().manual_seed(4)
    first = torch.randn(1, 3, *args.det_size, generator=generator).to(bench.device)
    second = torch.randn(1, 3, *args.seg_size, generator=generator).to(bench.device)
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(model, dynamic=True)
    log(f'compile: first call at {size_key(args.det_size)} (compiles)')

    def first_call(x: Tensor) -> float:
        start = time.perf_counter()
        with torch.no_grad(), bench.autocast():
            compiled(x)
        bench.sync()
        return time.perf_counter() - start

    compile_s = first_call(first)
    log(f'compile: first call at {size_key(args.seg_size)}')
    second_size_first_call_s = first_call(second)
    with torch.no_grad(), bench.autocast():
        errors = [(a.float() - b.float()).abs().max().item() for a, b in zip(compiled(first), model(first))]
    timed = bench.interleaved(
        {'eager': inference_run(model, first, bench), 'compiled': inference_run(compiled, first, bench)}
    )
    return dict(
        size=size_key(args.det_size),
        second_size=size_key(args.seg_size),
        compile_s=compile_s,
        second_size_first_call_s=second_size_first_call_s,
        unique_graphs=counters['stats']['unique_graphs'],
        graph_breaks=sum(counters['graph_break'].values()),
        max_abs_error_vs_eager=max(errors),
        timing=timed,
        speedup_vs_eager=timed['eager']['median_s'] / timed['compiled']['median_s'],
    )


def bench_scaling(args, bench: Bench) -> dict:
    torch.manual_seed(0)
    ours = SwinBackbone(arch=args.arch, drop_path_rate=0.0).to(bench.device).eval()
    width = ours.num_features[min(2, len(ours.num_features) - 1)]
    vit = GlobalAttentionEncoder(embed_dims=width, num_heads=max(1, width // 64)).to(bench.device).eval()
    names = {
        OURS: f'SwinBackbone ({args.arch})',
        'global_attention': f'ViT, global attention (width {width}, depth 12, patch 16)',
    }
    times: dict = {name: [] for name in names}
    pixels = []
    for side in args.scaling_sizes:
        x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(side)).to(bench.device)
        log(f'scaling: {side}x{side}')
        timed = bench.interleaved(
            {OURS: inference_run(ours, x, bench), 'global_attention': inference_run(vit, x, bench)},
            repeats=args.scaling_repeats,
        )
        pixels.append(side * side)
        for name in names:
            times[name].append(timed[name]['median_s'])
    fits = {}
    for name in names:
        fit = linear_fit(pixels, times[name])
        exponent = linear_fit([math.log(p) for p in pixels], [math.log(t) for t in times[name]])['slope']
        fits[name] = dict(linear=fit, power_law_exponent=exponent)
    result = dict(sizes=list(args.scaling_sizes), pixels=pixels, time_s=times, fits=fits, labels=names)
    if args.plot:
        result['plot'] = plot_scaling(result, args.plot)
    return result


def plot_scaling(result: dict, path: str) -> str:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    megapixels = [p / 1e6 for p in result['pixels']]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    for name, marker in ((OURS, 'o'), ('global_attention', 's')):
        times = result['time_s'][name]
        fit = result['fits'][name]
        (line,) = ax.plot(
            megapixels,
            times,
            marker,
            label=f'{result["labels"][name]}: exponent '
            f'{fit["power_law_exponent"]:.2f}, linear R$^2$ {fit["linear"]["r2"]:.3f}',
        )
        grid = [megapixels[0] + (megapixels[-1] - megapixels[0]) * i / 50 for i in range(51)]
        linear = fit['linear']
        ax.plot(
            grid,
            [linear['intercept'] + linear['slope'] * g * 1e6 for g in grid],
            '-',
            color=line.get_color(),
            alpha=0.5,
            linewidth=1,
        )
    ax.set_xlabel(f'input pixels (millions), square images from {result["sizes"][0]} to {result["sizes"][-1]}')
    ax.set_ylabel('inference time, batch 1 (s)')
    ax.set_title('Time against pixels; lines: linear fits')
    ax.legend(fontsize=7, loc='upper left')
    ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------
# Report


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


def format_report(results: dict) -> str:
    lines = []
    env = results['environment']
    lines.append(
        f'device {env["device"]} ({env["cuda"] or env["cpu"]}), {env["dtype"]}, {env["threads"]} threads, '
        f'torch {env["torch"]}, mmdet {env["mmdet"]}, mmseg {env["mmseg"]}'
        + (', freed memory kept in the heap (--keep-freed-memory)' if env.get('keep_freed_memory') else '')
    )
    if env.get('cpu_simd_flags') is not None:
        native = 'native bf16' if env.get('native_bf16') else 'no native bf16'
        lines.append(f'CPU flags ({native}): {" ".join(env["cpu_simd_flags"])}')
    ms = lambda t: f'{1e3 * t:9.1f}'  # noqa: E731
    if 'complexity' in results:
        c = results['complexity']
        lines.append('\nComplexity (FLOPs = multiply-adds, MMEngine)')
        header = f'{"":18}{"params (M)":>12}' + ''.join(f'{"GFLOPs " + s:>20}' for s in c['flops'])
        lines.append(header)
        for name in c['params']:
            lines.append(
                f'{name:18}{c["params"][name] / 1e6:12.2f}'
                + ''.join(f'{c["flops"][s][name] / 1e9:20.1f}' for s in c['flops'])
            )
    if 'backbones' in results:
        b = results['backbones']
        names = [OURS, MMDET, MMSEG]
        lines.append('\nBackbones (medians; speed-up = peer time / ours; memory ratio = ours / peer)')
        lines.append(f'{"measure":40}' + ''.join(f'{n:>12}' for n in names) + f'{"vs mmdet":>11}{"vs mmseg":>11}')
        for size, timed in b['inference'].items():
            lines.append(
                f'{"inference ms, batch 1, " + size:40}'
                + ''.join(f'{ms(timed[n]["median_s"]):>12}' for n in names)
                + ''.join(f'{timed[p]["median_s"] / timed[OURS]["median_s"]:10.2f}x' for p in (MMDET, MMSEG))
            )
        tp = b['throughput']
        lines.append(
            f'{"throughput img/s, batch " + str(tp["batch"]) + ", " + tp["size"]:40}'
            + ''.join(f'{tp["images_per_s"][n]:12.2f}' for n in names)
            + ''.join(f'{tp["images_per_s"][OURS] / tp["images_per_s"][p]:10.2f}x' for p in (MMDET, MMSEG))
        )
        steps = [b[key] for key in TRAIN_STEP_KEYS if key in b]
        for ts in steps:
            timed = ts['timing']
            lines.append(
                f'{"train step ms, batch " + str(ts["batch"]) + ", " + ts["size"]:40}'
                + ''.join(f'{ms(timed[n]["median_s"]):>12}' for n in names)
                + ''.join(f'{timed[p]["median_s"] / timed[OURS]["median_s"]:10.2f}x' for p in (MMDET, MMSEG))
                + f'  drop_path_rate {ts["drop_path_rate"]:g}'
            )
        mem = b['train_memory']['peak_bytes']
        for suffix, label in (('', 'train peak MiB'), ('_with_cp', 'train peak MiB, with_cp')):
            lines.append(
                f'{label:40}'
                + ''.join(f'{mem[n + suffix] / 2**20:12.0f}' for n in names)
                + ''.join(f'{mem[OURS + suffix] / mem[p + suffix]:10.2f}x' for p in (MMDET, MMSEG))
            )
        lines.append(
            f'{"ours with_cp / peer without":40}{"":36}'
            + ''.join(f'{mem[OURS + "_with_cp"] / mem[p]:10.2f}x' for p in (MMDET, MMSEG))
        )
        lines.append(f'memory: {b["train_memory"]["method"]}')
        timings = [timed for part in b['inference'].values() for timed in part.values()]
        timings += list(b['throughput']['timing'].values())
        timings += [timed for ts in steps for timed in ts['timing'].values()]
        lines.append(contention_note(timings))
    if 'floor' in results:
        f = results['floor']
        lines.append(f"\nFloor at {f['size']}: each backbone's matrix products alone (same run, same shapes)")
        lines.append(
            f'{"":10}{"time ms":>10}{"matmuls ms":>12}{"/own floor":>12}{"/mmswin floor":>15}'
            f'{"model GFLOP/s":>15}{"matmul GFLOP/s":>16}'
        )
        for name in (OURS, MMDET, MMSEG):
            e = f[name]
            lines.append(
                f'{name:10}{ms(e["time_s"]):>10}{ms(e["matmuls_alone_s"]):>12}{e["time_over_own_floor"]:12.2f}'
                f'{e["time_over_mmswin_floor"]:15.2f}{e["model_gflop_per_s"]:15.1f}{e["matmul_gflop_per_s"]:16.1f}'
            )
        lines.append(
            "The pass's GELUs, layer norms and attention softmaxes alone, and the products plus them "
            '(a pass with every copy, mask, residual and bias add fused away):'
        )
        lines.append(f'{"":10}{"element-wise ms":>16}{"products + it ms":>18}{"/own floor":>12}')
        for name in (OURS, MMDET, MMSEG):
            e = f[name]
            lines.append(
                f'{name:10}{ms(e["elementwise_alone_s"]):>16}{ms(e["essential_alone_s"]):>18}'
                f'{e["essential_over_own_floor"]:12.2f}'
            )
        lines.append(contention_note(list(f['timing'].values())))
        if 'train' in f:
            t = f['train']
            lines.append(
                f'\nTraining step, batch {t["batch"]}, {t["size"]}: against its matrix products alone '
                '(forward and backward, same run)'
            )
            lines.append(f'{"":10}{"time ms":>10}{"matmuls ms":>12}{"overhead ms":>13}{"/own floor":>12}{"GFLOP":>9}')
            for name in (OURS, MMDET):
                e = t[name]
                lines.append(
                    f'{name:10}{ms(e["time_s"]):>10}{ms(e["matmuls_alone_s"]):>12}{ms(e["overhead_s"]):>13}'
                    f'{e["time_over_own_floor"]:12.2f}{e["matmul_gflop"]:9.1f}'
                )
            lines.append(contention_note(list(t['timing'].values())))
    if 'profile' in results:
        p = results['profile']
        lines.append(f'\nProfile of one inference pass, batch 1, {p["size"]} (self time, ms and share)')
        lines.append(f'{"":40}{OURS:>18}{MMDET:>18}')
        for group in list(p[OURS]['groups_ms']):
            cells = ''.join(
                f'{p[n]["groups_ms"][group]:10.1f} ({100 * p[n]["groups_ms"][group] / p[n]["total_ms"]:3.0f}%)'
                for n in (OURS, MMDET)
            )
            lines.append(f'{group:40}{cells}')
        lines.append(f'{"total":40}' + ''.join(f'{p[n]["total_ms"]:10.1f}{"":8}' for n in (OURS, MMDET)))
        lines.append(
            f'{"minor page faults, one pass":40}' + ''.join(f'{p[n]["minor_page_faults"]:>18,}' for n in (OURS, MMDET))
        )
        lines.append(
            f'{"system time s, one pass":40}' + ''.join(f'{p[n]["system_time_s"]:18.2f}' for n in (OURS, MMDET))
        )
    if 'models' in results:
        for task, e in results['models'].items():
            if 'skipped' in e:
                lines.append(f'\n{task}: skipped ({e["skipped"]})')
                continue
            peer = e['peer']
            lines.append(f'\n{task} ({e["config"]}), backbone: {OURS} vs {peer}')
            lines.append(f'{"measure":40}{OURS:>12}{peer:>12}{"ratio":>11}')
            inf, tr = e['inference'], e['train_step']
            lines.append(
                f'{"inference ms, batch 1, " + inf["size"]:40}{ms(inf["timing"][OURS]["median_s"]):>12}'
                f'{ms(inf["timing"][peer]["median_s"]):>12}{e["ratios"]["inference_speedup"]:10.2f}x'
            )
            lines.append(
                f'{"train step ms, batch " + str(tr["batch"]) + ", " + tr["size"]:40}'
                f'{ms(tr["timing"][OURS]["median_s"]):>12}{ms(tr["timing"][peer]["median_s"]):>12}'
                f'{e["ratios"]["train_step_speedup"]:10.2f}x'
            )
            mem = e['train_memory']['peak_bytes']
            lines.append(
                f'{"train peak MiB":40}{mem[OURS] / 2**20:12.0f}{mem[peer] / 2**20:12.0f}'
                f'{e["ratios"]["train_memory_ratio"]:10.2f}x'
            )
            lines.append(f'{"params (M)":40}{e["params"][OURS] / 1e6:12.2f}{e["params"][peer] / 1e6:12.2f}')
            if 'flops' in e:
                lines.append(
                    f'{"GFLOPs (multiply-adds), " + e["flops"]["size"]:40}{e["flops"]["mmswin"] / 1e9:12.1f}'
                    f'{e["flops"]["peer"] / 1e9:12.1f}'
                )
    if 'compile' in results:
        c = results['compile']
        lines.append('\ntorch.compile(dynamic=True), inductor, inference batch 1')
        lines.append(
            f'compile (first call, {c["size"]}) {c["compile_s"]:.1f} s; first call at {c["second_size"]} '
            f'{c["second_size_first_call_s"]:.1f} s; {c["unique_graphs"]} graph(s), {c["graph_breaks"]} graph breaks; '
            f'max |compiled - eager| {c["max_abs_error_vs_eager"]:.2e}'
        )
        lines.append(
            f'eager {ms(c["timing"]["eager"]["median_s"])} ms, compiled {ms(c["timing"]["compiled"]["median_s"])} ms: '
            f'compiled is {c["speedup_vs_eager"]:.2f}x eager'
        )
    if 'scaling' in results:
        s = results['scaling']
        lines.append('\nScaling: inference time (s), batch 1, square inputs')
        lines.append(f'{"side":>6}' + ''.join(f'{n:>20}' for n in s['time_s']))
        for i, side in enumerate(s['sizes']):
            lines.append(f'{side:6d}' + ''.join(f'{s["time_s"][n][i]:20.3f}' for n in s['time_s']))
        for name, fit in s['fits'].items():
            lines.append(
                f'{name}: linear fit R^2 {fit["linear"]["r2"]:.4f}, time ~ pixels^{fit["power_law_exponent"]:.2f}'
            )
        if s.get('plot'):
            lines.append(f'plot: {s["plot"]}')
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Benchmark SwinBackbone against MMDetection and MMSegmentation',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument('--parts', nargs='+', choices=ALL_PARTS, default=list(DEFAULT_PARTS))
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument(
        '--dtype',
        choices=tuple(DTYPES),
        default='fp32',
        help='fp32, or autocast to bf16 / fp16 (the chunked CPU training path is fp32 only)',
    )
    parser.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
    parser.add_argument(
        '--keep-freed-memory',
        action='store_true',
        help="glibc: keep freed memory in the process's heap (mallopt), so that large tensors reuse "
        'pages instead of page-faulting fresh ones; shows how much of each time is page faults',
    )
    parser.add_argument('--arch', default='tiny', choices=sorted(ARCH_ZOO), help="the backbones' preset")
    parser.add_argument(
        '--drop-path-rate',
        type=float,
        default=0.0,
        help='stochastic depth of the backbones (0: every run does the same work)',
    )
    parser.add_argument(
        '--train-drop-path-rate',
        type=float,
        default=0.2,
        help='a second training-step row with this stochastic depth (configs/mask_rcnn_swin_t.py: 0.2); 0: none',
    )
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--det-size', type=int, nargs=2, default=(800, 1333), metavar=('H', 'W'))
    parser.add_argument('--seg-size', type=int, nargs=2, default=(512, 512), metavar=('H', 'W'))
    parser.add_argument('--train-size', type=int, nargs=2, default=(512, 512), metavar=('H', 'W'))
    parser.add_argument('--train-batch', type=int, default=2)
    parser.add_argument('--throughput-batch', type=int, default=4)
    parser.add_argument('--det-config', default='configs/mask_rcnn_swin_t.py')
    parser.add_argument('--seg-config', default='configs/upernet_swin_t.py')
    parser.add_argument('--model-warmup', type=int, default=1)
    parser.add_argument('--model-repeats', type=int, default=3)
    parser.add_argument('--model-flops', action='store_true', help='also count whole-model FLOPs (slow)')
    parser.add_argument('--scaling-sizes', type=int, nargs='+', default=(256, 512, 768, 1024, 1280, 1536))
    parser.add_argument('--scaling-repeats', type=int, default=3)
    parser.add_argument('--json', default='work_dirs/benchmark/benchmark.json', help='where to write the results')
    parser.add_argument('--plot', default='work_dirs/benchmark/scaling.png', help='scaling plot (PNG)')
    parser.add_argument(
        '--quick',
        action='store_true',
        help='tiny sizes and one repeat: checks that every part runs (figures meaningless)',
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.arch = QUICK_ARCH
        args.det_size, args.seg_size, args.train_size = (64, 96), (64, 64), (64, 64)
        args.scaling_sizes = (32, 48, 64)
        args.warmup = args.model_warmup = 0
        args.repeats = args.model_repeats = args.scaling_repeats = 1
        args.throughput_batch = 2
    rates = (('--drop-path-rate', args.drop_path_rate), ('--train-drop-path-rate', args.train_drop_path_rate))
    for flag, rate in rates:
        if not 0.0 <= rate < 1.0:
            parser.error(f'{flag} must be in [0, 1), got {rate}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: CUDA is not available')
    outputs = (('--json', args.json, 'benchmark.json'), ('--plot', args.plot, 'scaling.png'))
    for flag, path, example in outputs:  # found now, not after half an hour of measuring
        if path:
            try:
                check_output_file(path, flag, example)
            except PreflightError as error:
                parser.error(str(error))
    return args


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
        raise SystemExit('error: --keep-freed-memory needs glibc (Linux); run without it')
    if not (libc.mallopt(M_MMAP_THRESHOLD, 2**30) and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)):
        raise SystemExit('error: --keep-freed-memory: glibc refused mallopt; run without it')


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.keep_freed_memory:
        keep_freed_memory()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/get_flops.py
    bench = Bench(args.device, DTYPES[args.dtype], args.warmup, args.repeats)
    results: dict = dict(environment=environment(args), settings={k: v for k, v in vars(args).items()})
    parts = dict(
        complexity=bench_complexity,
        backbones=bench_backbones,
        floor=bench_floor,
        profile=bench_profile,
        models=bench_models,
        scaling=bench_scaling,
        compile=bench_compile,
    )
    for part in ALL_PARTS:
        if part in args.parts:
            results[part if part != 'backbones' else 'backbones'] = parts[part](args, bench)
    results['environment']['load_average_end'] = os.getloadavg()
    print(format_report(results))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1, default=str)
        print(f'\nresults: {args.json}')
    return results


if __name__ == '__main__':
    main()
