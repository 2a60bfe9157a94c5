"""Benchmarks, in two modes.

    python tools/analysis_tools/benchmark.py CONFIG [CHECKPOINT] [--task inference|dataloader|dataset]
    python tools/analysis_tools/benchmark.py configs/demo/mask_rcnn_swin_t_shapes.py --max-iter 50
    python tools/analysis_tools/benchmark.py peers [--parts backbones floor] [--quick]

``CONFIG [CHECKPOINT]``: images per second of the whole model over the config's test data
loader, as MMDetection's and MMSegmentation's ``benchmark.py`` measure it
(:mod:`mmswin.analysis.fps`). ``peers``: SwinBackbone against MMDetection's and
MMSegmentation's SwinTransformer, part by part (:mod:`mmswin.analysis.compare`).
"""

from __future__ import annotations

import argparse
import sys

from mmswin.engine.preflight import run_tool

PEERS = 'peers'


def parse_fps_args(argv):
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(
        description="Images per second of a config's model over its test data loader "
        f'(or `benchmark.py {PEERS} --help`: the backbone against its peers)',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument('config', help='config file, e.g. configs/demo/mask_rcnn_swin_t_shapes.py')
    parser.add_argument('checkpoint', nargs='?', help='weights to load (default: random weights)')
    parser.add_argument('--task', choices=('inference', 'dataloader', 'dataset'), default='inference')
    parser.add_argument('--max-iter', type=int, default=2000, help='timed iterations (at most the data set)')
    parser.add_argument('--log-interval', type=int, default=50, help='log fps every N timed iterations')
    parser.add_argument('--num-warmup', type=int, default=5, help='untimed iterations first')
    parser.add_argument('--repeat-num', type=int, default=1, help='repeat the whole measurement N times')
    parser.add_argument('--device', default='cpu', help='cpu or cuda')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys: key=value')
    return parser.parse_args(argv)


def parse_peer_args(argv):
    from mmswin.analysis.compare import ALL_PARTS, DEFAULT_PARTS, DTYPE_NAMES

    parser = argparse.ArgumentParser(
        prog=f'benchmark.py {PEERS}',
        description="Benchmark SwinBackbone against MMDetection's and MMSegmentation's SwinTransformer",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add('--parts', nargs='+', choices=ALL_PARTS, default=list(DEFAULT_PARTS))
    add('--device', choices=('cpu', 'cuda'), default='cpu')
    add('--dtype', choices=DTYPE_NAMES, default='fp32', help='fp32, or autocast to bf16 / fp16')
    add('--threads', type=int, default=2, help='torch.set_num_threads')
    add(
        '--keep-freed-memory',
        action='store_true',
        help="glibc: keep freed memory in the process's heap (mallopt), so that large tensors reuse "
        'pages instead of page-faulting fresh ones; shows how much of each time is page faults',
    )
    add('--arch', default='tiny', choices=('tiny', 'small', 'base', 'large'), help="the backbones' preset")
    add('--drop-path-rate', type=float, default=0.0, help='stochastic depth (0: every run does the same work)')
    add(
        '--train-drop-path-rate',
        type=float,
        default=0.2,
        help='a second training-step row with this stochastic depth (configs/mask_rcnn_swin_t.py: 0.2); 0: none',
    )
    add('--warmup', type=int, default=1)
    add('--repeats', type=int, default=5)
    add('--det-size', type=int, nargs=2, default=(800, 1333), metavar=('H', 'W'))
    add('--seg-size', type=int, nargs=2, default=(512, 512), metavar=('H', 'W'))
    add('--train-size', type=int, nargs=2, default=(512, 512), metavar=('H', 'W'))
    add('--train-batch', type=int, default=2)
    add('--throughput-batch', type=int, default=4)
    add('--det-config', default='configs/mask_rcnn_swin_t.py')
    add('--seg-config', default='configs/upernet_swin_t.py')
    add('--model-warmup', type=int, default=1)
    add('--model-repeats', type=int, default=3)
    add('--model-flops', action='store_true', help='also count whole-model FLOPs')
    add('--scaling-sizes', type=int, nargs='+', default=(256, 512, 768, 1024, 1280, 1536))
    add('--scaling-repeats', type=int, default=3)
    add('--json', default='work_dirs/benchmark/benchmark.json', help='where to write the results')
    add('--plot', default='work_dirs/benchmark/scaling.png', help='scaling plot (PNG)')
    add('--quick', action='store_true', help='tiny sizes and one repeat: checks that every part runs')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == [PEERS]:
        from mmswin.analysis.compare import run_comparison

        run_comparison(parse_peer_args(argv[1:]))
        return 0
    args = parse_fps_args(argv)
    from mmswin.analysis.fps import benchmark_config

    benchmark_config(**vars(args))  # the flags are named as its arguments
    return 0


if __name__ == '__main__':
    run_tool(main)
