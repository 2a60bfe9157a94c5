"""The printed report of a backbone comparison (:func:`format_report`)."""

from __future__ import annotations

from .peers import MMDET, MMSEG, OURS, TRAIN_STEP_KEYS
from .timing import contention_note


def entries(part: dict, names: tuple) -> list[tuple[str, dict]]:
    """(name, entry) of each backbone ``names`` in a part's results."""
    return [(name, part[name]) for name in names]


def ms(seconds: float) -> str:
    """Seconds as milliseconds, 9 characters wide."""
    return f'{1e3 * seconds:9.1f}'


def essential_table(part: dict, names: tuple, ratio_key: str, ratio_label: str) -> list[str]:
    """The lines of a floor's element-wise table: per backbone its element-wise work
    alone, its products plus that work (ms), and the ratio ``ratio_key``."""
    lines = [f'{"":10}{"element-wise ms":>16}{"products + it ms":>18}{ratio_label:>12}']
    lines += [
        f'{name:10}{ms(e["elementwise_alone_s"]):>16}{ms(e["essential_alone_s"]):>18}{e[ratio_key]:12.2f}'
        for name, e in entries(part, names)
    ]
    return lines


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
        lines += [
            f'{name:10}{ms(e["time_s"]):>10}{ms(e["matmuls_alone_s"]):>12}{e["time_over_own_floor"]:12.2f}'
            f'{e["time_over_mmswin_floor"]:15.2f}{e["model_gflop_per_s"]:15.1f}{e["matmul_gflop_per_s"]:16.1f}'
            for name, e in entries(f, (OURS, MMDET, MMSEG))
        ]
        lines.append(
            "The pass's GELUs, layer norms and attention softmaxes alone, and the products plus them "
            '(a pass with every copy, mask, residual and bias add fused away):'
        )
        lines += essential_table(f, (OURS, MMDET, MMSEG), 'essential_over_own_floor', '/own floor')
        lines.append(contention_note(list(f['timing'].values())))
        if 'train' in f:
            t = f['train']
            lines.append(
                f'\nTraining step, batch {t["batch"]}, {t["size"]}: against its matrix products alone '
                '(forward and backward, same run)'
            )
            lines.append(f'{"":10}{"time ms":>10}{"matmuls ms":>12}{"overhead ms":>13}{"/own floor":>12}{"GFLOP":>9}')
            lines += [
                f'{name:10}{ms(e["time_s"]):>10}{ms(e["matmuls_alone_s"]):>12}{ms(e["overhead_s"]):>13}'
                f'{e["time_over_own_floor"]:12.2f}{e["matmul_gflop"]:9.1f}'
                for name, e in entries(t, (OURS, MMDET))
            ]
            lines.append(
                "The step's GELUs, layer norms and softmaxes with their backward passes alone, and the "
                'products plus them:'
            )
            lines += essential_table(t, (OURS, MMDET), 'time_over_essential', 'time / it')
            lines.append(
                f"MMDetection's step over our products + it: {t[OURS]['mmdet_time_over_essential']:.2f}x "
                '(the most speed-up that leaves room for)'
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
        lines.append(f'\ntorch.compile(dynamic=True), inductor, inference batch 1 at {c["size"]}')
        lines.append(f'eager {ms(c["timing"]["eager"]["median_s"]).strip()} ms')
        for name, v in c['variants'].items():
            lines.append(
                f'{name}: compile (first call) {v["compile_s"]:.1f} s; first call at {c["second_size"]} '
                f'{v["second_size_first_call_s"]:.1f} s; {v["unique_graphs"]} graph(s), {v["graph_breaks"]} graph '
                f'breaks; max |compiled - eager| {v["max_abs_error_vs_eager"]:.2e}; '
                f'{ms(c["timing"][name]["median_s"]).strip()} ms, {v["speedup_vs_eager"]:.2f}x eager'
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
