"""Generate docs/model_zoo.md from the configs, so that the page stays true.

    python tools/misc/model_zoo.py                        # rewrite docs/model_zoo.md
    python tools/misc/model_zoo.py --check                # regenerate and diff; exit 1 if the page is stale
    python tools/misc/model_zoo.py --check --reuse-counts  # counts of unchanged models kept from the page

What the page holds and how it is made: :mod:`mmswin.analysis.model_zoo`.
"""

from __future__ import annotations

import argparse
import os

from mmswin.engine.preflight import run_tool

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAGE = 'docs/model_zoo.md'
DEMO_RESULTS = 'docs/demo_results.json'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Generate docs/model_zoo.md from the configs (parameters, FLOPs, published and measured results)'
    )
    parser.add_argument('--out', default=os.path.join(ROOT, PAGE), help=f'the page to write or check (default: {PAGE})')
    parser.add_argument(
        '--demo-results',
        default=os.path.join(ROOT, DEMO_RESULTS),
        help=f'measured demo results (default: {DEMO_RESULTS}; missing: "not measured yet")',
    )
    parser.add_argument(
        '--check',
        action='store_true',
        help='do not write: regenerate, print the differences, exit 1 if the page is stale',
    )
    parser.add_argument(
        '--reuse-counts',
        action='store_true',
        help='keep the parameters and FLOPs of configs outside configs/demo/ from the existing page while '
        'their model, input size and the counting rules are unchanged (everything else is recomputed)',
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmswin.analysis.model_zoo import update_model_zoo

    return update_model_zoo(ROOT, args.out, args.demo_results, check=args.check, reuse_counts=args.reuse_counts)


if __name__ == '__main__':
    run_tool(main)
