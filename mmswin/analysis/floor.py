"""The floor: each backbone's matrix products (and unavoidable element-wise work)
timed alone, at the shapes its pass records, in the same run."""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from .peers import MMDET, OURS, build_backbones, count_backbone, inference_run, training_step
from .timing import Bench, log, size_key


class MatmulRecorder(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the shape of every matrix product an inference pass runs: ``(M, K, N)``
    for mm/addmm/addmm_ (linear layers), ``(batch, M, K, N)`` for bmm, and fused
    attention as its two batched products (``q @ k^T`` and ``weights @ v``).

    Also records the element-wise work no implementation can skip (``elementwise``):
    every GELU, every layer norm, and the softmax of every attention (inside fused
    attention too), as ``('gelu', n, dtype)``, ``('layer_norm', rows, C, dtype)``,
    ``('softmax', rows, N, dtype)``; their backward passes are not recorded (a
    training floor adds one per forward op: :func:`elementwise_floor`)."""

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
            self.elementwise.append(('softmax', batch * q.shape[-2], k.shape[-2], q.dtype))
        elif name in ('gelu', 'gelu_'):
            self.elementwise.append(('gelu', args[0].numel(), args[0].dtype))
        elif name == 'native_layer_norm':
            channels = math.prod(args[1])
            self.elementwise.append(('layer_norm', args[0].numel() // channels, channels, args[0].dtype))
        elif name in ('_softmax', 'softmax'):
            rows, length = args[0].numel() // args[0].shape[args[1]], args[0].shape[args[1]]
            self.elementwise.append(('softmax', rows, length, args[0].dtype))
        return func(*args, **kwargs)


def record_matmuls(run: Callable[[], object]) -> MatmulRecorder:
    """The matrix products (and element-wise work) one call of ``run`` makes (an
    inference pass or a training step)."""
    recorder = MatmulRecorder()
    with recorder:
        run()
    return recorder


def timed_against_own_products(
    runs: dict[str, Callable[[], object]],
    bench: Bench,
    elementwise: Optional[dict[str, Callable[[], object]]] = None,
    backward: bool = False,
) -> tuple[dict, dict]:
    """Times each run and, interleaved with them, its own matrix products alone
    (``'<name>_matmuls'``) and, with ``elementwise`` (per name, a callable whose GELUs,
    layer norms and softmaxes are recorded: the run itself, or a training step's
    forward pass), those alone (``'<name>_elementwise'``), each with its backward pass
    where ``backward``. Returns the timings and the recorded products per name."""
    records = {name: record_matmuls(run) for name, run in runs.items()}
    floors = {}
    for name, record in records.items():
        floors[f'{name}_matmuls'] = matmul_floor(record.products, bench.device, bench.dtype)
        if elementwise is not None:
            ops = record_matmuls(elementwise[name]).elementwise
            floors[f'{name}_elementwise'] = elementwise_floor(ops, bench.device, backward)
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


def elementwise_floor(ops: list[tuple], device: torch.device, backward: bool = False) -> Callable[[], None]:
    """A callable that runs the recorded GELUs, layer norms and softmaxes alone, each at
    its recorded shape and dtype on its own random operand, into preallocated outputs
    (the layer norm's forward allocates). With ``backward``, each op's backward pass
    (``gelu_backward``, ``native_layer_norm_backward``, ``_softmax_backward_data``)
    follows it, as in a training step."""
    operands: dict = {}
    calls = []
    for key in ops:
        kind, shape, dtype = key[0], key[1:-1], key[-1]
        if key not in operands:
            options = dict(device=device, dtype=dtype)
            operands[key] = dict(x=torch.randn(*shape, **options), out=torch.empty(*shape, **options))
            if backward:
                operands[key].update(grad=torch.randn(*shape, **options), grad_in=torch.empty(*shape, **options))
            if kind == 'layer_norm':
                operands[key].update(weight=torch.ones(shape[1], **options), bias=torch.zeros(shape[1], **options))
        calls.append(_elementwise_call(kind, operands[key], backward))

    def run():
        for call in calls:
            call()

    return run


def _elementwise_call(kind: str, t: dict, backward: bool) -> Callable[[], None]:
    """One recorded element-wise op (``'gelu'``, ``'softmax'`` or ``'layer_norm'``) on the
    operands ``t`` of :func:`elementwise_floor`, and its backward pass where ``backward``."""
    aten = torch.ops.aten
    if kind == 'gelu':

        def call():
            aten.gelu.out(t['x'], out=t['out'])
            if backward:
                aten.gelu_backward.grad_input(t['grad'], t['x'], grad_input=t['grad_in'])

    elif kind == 'softmax':

        def call():
            torch.softmax(t['x'], -1, out=t['out'])
            if backward:
                aten._softmax_backward_data.out(t['grad'], t['out'], -1, t['x'].dtype, grad_input=t['grad_in'])

    else:
        channels = t['x'].shape[-1:]

        def call():
            _, mean, rstd = torch.native_layer_norm(t['x'], channels, t['weight'], t['bias'], 1e-5)
            if backward:
                aten.native_layer_norm_backward(
                    t['grad'], t['x'], channels, mean, rstd, t['weight'], t['bias'], [True, True, True]
                )

    return call


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
    timed, products = timed_against_own_products(runs, bench, elementwise=runs)
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
    backward, recorded during one step) and against those plus its GELUs, layer norms
    and softmaxes with their backward passes (recorded in the step's forward pass), for
    ours and MMDetection's: how much of the step is overhead that a faster backbone
    could remove, and the most speed-up over MMDetection's step that our products and
    element-wise work alone would leave room for."""
    x = torch.randn(args.train_batch, 3, *args.train_size, generator=torch.Generator().manual_seed(2))
    x = x.to(bench.device)
    for model in models.values():
        model.train()
    log(f'floor: training steps and their matrix products alone, batch {args.train_batch}, {size_key(args.train_size)}')
    steps = {k: training_step(m, x, bench) for k, m in models.items()}
    forwards = {k: training_forward(m, x, bench) for k, m in models.items()}
    timed, products = timed_against_own_products(steps, bench, elementwise=forwards, backward=True)
    result: dict = dict(size=size_key(args.train_size), batch=args.train_batch, timing=timed)
    for name in models:
        step_time, floor_time = timed[name]['median_s'], timed[f'{name}_matmuls']['median_s']
        essential_time = floor_time + timed[f'{name}_elementwise']['median_s']
        result[name] = dict(
            time_s=step_time,
            matmuls_alone_s=floor_time,
            overhead_s=step_time - floor_time,
            time_over_own_floor=step_time / floor_time,
            elementwise_alone_s=essential_time - floor_time,
            essential_alone_s=essential_time,
            time_over_essential=step_time / essential_time,
            num_matmuls=len(products[name]),
            matmul_gflop=product_flops(products[name]) / 1e9,
        )
    result[OURS]['mmdet_time_over_essential'] = result[MMDET]['time_s'] / result[OURS]['essential_alone_s']
    return result


def training_forward(model: nn.Module, x: Tensor, bench: Bench) -> Callable[[], None]:
    """The forward pass of :func:`~.peers.training_step` (autograd on, autocast as the
    bench says), without the backward."""

    def forward():
        with bench.autocast():
            model(x)

    return forward
