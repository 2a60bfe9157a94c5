"""The table of docs/deployment.md: export each model to ONNX (dynamic batch, height and
width), run it in ONNX Runtime on the CPU at several sizes and print the largest
difference from PyTorch, as a Markdown table.

    python tools/deployment/measure_onnx.py                 # Swin-T V1/V2, fp16/bf16, UperNet, Mask R-CNN
    python tools/deployment/measure_onnx.py --quick         # the mini backbone only

Random seeded weights (perturbed off their initial values); the ONNX files go to
``--work-dir``.
"""

from __future__ import annotations

import argparse
import os

from mmswin.engine.preflight import run_tool


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Measure ONNX exports in ONNX Runtime against PyTorch')
    parser.add_argument('--work-dir', default='work_dirs/onnx_measure', help='where the ONNX files go')
    parser.add_argument('--quick', action='store_true', help='the mini backbone only, not Swin-T and whole models')
    parser.add_argument('--markdown', help='also write the table to this file')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmswin.engine.preflight import check_output_folder

    check_output_folder(args.work_dir, '--work-dir')
    if args.markdown:
        from mmswin.engine.preflight import check_output_file

        check_output_file(args.markdown, '--markdown', 'onnx.md')
    from mmswin.deployment.measure import HEADER, measure_all

    os.makedirs(args.work_dir, exist_ok=True)
    rows = measure_all(args.work_dir, quick=args.quick, log=lambda line: print(line, flush=True))
    table = '\n'.join([HEADER] + [row.markdown() for row in rows])
    print(table)
    if args.markdown:
        from mmswin.atomic import atomic_file

        with atomic_file(args.markdown) as partial, open(partial, 'w') as file:
            file.write(table + '\n')
    return 0


if __name__ == '__main__':
    run_tool(main)
