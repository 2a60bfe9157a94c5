"""The floor: each backbone's matrix products (and unavoidable element-wise work)
timed alone, at the shapes its pass records, in the same run."""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .peers import MMDET, OURS, build_backbones, count_backbone, inference_run, training_step
from .timing import Bench, log, size_key


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
