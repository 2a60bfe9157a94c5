"""SwinBackbone and MMDetection's / MMSegmentation's SwinTransformer with the same weights,
timed against each other: inference, throughput, training steps, memory, compile."""

from __future__ import annotations

import copy
import time
from typing import Callable

import torch
from torch import Tensor, nn

from mmswin.models import SwinBackbone
from mmswin.models.backbones.swin import ARCH_ALIASES, ARCH_ZOO

from .flops import count_flops
from .timing import Bench, log, memory_method, size_key

OURS, MMDET, MMSEG = 'mmswin', 'mmdet', 'mmseg'


# --quick: a small Swin (every stage has a regular and a shifted block) for smoke runs.
QUICK_ARCH = dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))


def arch_kwargs(arch) -> dict:
    """``embed_dims``, ``depths`` and ``num_heads`` of a preset name or an arch dict."""
    if isinstance(arch, str):
        arch = ARCH_ZOO[ARCH_ALIASES.get(arch, arch)]
    return dict(embed_dims=arch['embed_dims'], depths=tuple(arch['depths']), num_heads=tuple(arch['num_heads']))


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


def count_backbone(model: nn.Module, size) -> int:
    """Multiply-adds of one CPU fp32 inference pass at batch 1 of the path the model
    runs there (:func:`mmswin.analysis.flops.count_flops`); ``model`` is not changed."""
    model = copy.deepcopy(model).cpu()
    model.eval()  # (MMDetection's train() returns None: no chaining)
    return count_flops(model, torch.zeros(1, 3, *size))['']


def bench_complexity(args, bench: Bench) -> dict:
    models = build_backbones(args.arch, args.drop_path_rate)
    log('complexity (multiply-adds of the default path)')
    return dict(
        params={k: sum(p.numel() for p in m.parameters()) for k, m in models.items()},
        flops={
            size_key(size): {k: count_backbone(m, size) for k, m in models.items()}
            for size in (args.det_size, args.seg_size)
        },
        flops_unit='multiply-adds (mmswin.analysis.flops, MMEngine FlopAnalyzer rules)',
    )


def bench_compile(args, bench: Bench) -> dict:
    """``torch.compile(backbone, dynamic=True)`` (inductor) against eager: the first
    call's time (compiling), the first call at a second size (a recompile would show
    here), the graphs captured, and the compiled and eager inference times, interleaved.
    The same again with Inductor's ``freezing`` (weights folded in as constants: for
    inference only, and blind to later changes of the weights)."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    model = build_backbones(args.arch, args.drop_path_rate)[OURS].to(bench.device).eval()
    generator = torch.Generator().manual_seed(4)
    first = torch.randn(1, 3, *args.det_size, generator=generator).to(bench.device)
    second = torch.randn(1, 3, *args.seg_size, generator=generator).to(bench.device)

    def first_call(compiled, x: Tensor) -> float:
        start = time.perf_counter()
        with torch.no_grad(), bench.autocast():
            compiled(x)
        bench.sync()
        return time.perf_counter() - start

    variants, runs = {}, {'eager': inference_run(model, first, bench)}
    for name, options in (('compiled', None), ('compiled_frozen', {'freezing': True})):
        torch._dynamo.reset()
        counters.clear()
        compiled = torch.compile(model, dynamic=True, options=options)
        log(f'compile ({name}): first call at {size_key(args.det_size)} (compiles)')
        compile_s = first_call(compiled, first)
        log(f'compile ({name}): first call at {size_key(args.seg_size)}')
        second_size_first_call_s = first_call(compiled, second)
        with torch.no_grad(), bench.autocast():
            errors = [(a.float() - b.float()).abs().max().item() for a, b in zip(compiled(first), model(first))]
        variants[name] = dict(
            compile_s=compile_s,
            second_size_first_call_s=second_size_first_call_s,
            unique_graphs=counters['stats']['unique_graphs'],
            graph_breaks=sum(counters['graph_break'].values()),
            max_abs_error_vs_eager=max(errors),
        )
        runs[name] = inference_run(compiled, first, bench)
    timed = bench.interleaved(runs)
    for name, variant in variants.items():
        variant['speedup_vs_eager'] = timed['eager']['median_s'] / timed[name]['median_s']
    return dict(size=size_key(args.det_size), second_size=size_key(args.seg_size), variants=variants, timing=timed)
