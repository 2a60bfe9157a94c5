"""Where an inference pass spends its time: profiler self time per group of operators."""

from __future__ import annotations

import torch

from .peers import MMDET, OURS, build_backbones, inference_run
from .timing import Bench, log, size_key

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
