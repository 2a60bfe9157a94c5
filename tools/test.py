"""Evaluate a checkpoint on the config's test set (COCO bbox/segm AP, or mIoU).

python tools/test.py configs/mask_rcnn_swin_t.py work_dirs/mask_rcnn_swin_t/epoch_12.pth
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from mmswin.engine.preflight import PreflightError, run_tool  # noqa: E402


def parse_args(argv=None):
    from mmswin.engine.config_checks import CfgOptionsAction

    parser = argparse.ArgumentParser(description='Test a detector or segmentor with mmswin.SwinBackbone')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file (.pth), or a work dir to use its newest checkpoint')
    parser.add_argument('--work-dir', help='where the evaluation log goes (default: work_dirs/<config name>)')
    parser.add_argument('--out', help='also dump the raw predictions to this .pkl file')
    parser.add_argument('--show-dir', help='save pictures of the predictions under <work dir>/<timestamp>/SHOW_DIR')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, help='override config keys: key=value ...')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def newest_checkpoint(work_dir: str) -> str:
    """The checkpoint a work dir's ``last_checkpoint`` file points to."""
    pointer = os.path.join(work_dir, 'last_checkpoint')
    if not os.path.isfile(pointer):
        raise PreflightError(
            f"no checkpoint in '{work_dir}' (it has no last_checkpoint file); train first or pass a .pth file"
        )
    with open(pointer) as f:
        return f.read().strip()


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmswin.engine import setup_runner
    from mmswin.engine.config_checks import check_model_config
    from mmswin.engine.preflight import check_checkpoint_file, check_datasets, check_output_file

    if args.out:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise PreflightError(f"--out '{args.out}': the predictions are pickled; give a .pkl path")
        check_output_file(args.out, '--out', 'results.pkl')
    checkpoint = newest_checkpoint(args.checkpoint) if os.path.isdir(args.checkpoint) else args.checkpoint
    check_checkpoint_file(checkpoint, 'checkpoint', 'pass the .pth written by tools/train.py (see its work dir)')
    cfg = setup_runner.load_config(args.config, args.cfg_options)
    setup_runner.register_scope(cfg)
    check_model_config(cfg)
    cfg.launcher = args.launcher
    setup_runner.set_work_dir(cfg, args.config, args.work_dir)
    cfg.load_from = checkpoint
    # Evaluating needs no pretrained backbone file: the checkpoint holds every weight.
    if cfg.model.get('backbone', {}).get('init_cfg'):
        cfg.model.backbone.init_cfg = None
    if args.show_dir:
        setup_runner.enable_show_dir(cfg, args.show_dir)

    from mmswin.datasets import ensure_demo_data

    ensure_demo_data(cfg)
    check_datasets(cfg, ('test_dataloader',))
    setup_runner.adapt_to_hardware(cfg, args.launcher)

    runner = setup_runner.build_runner(cfg)
    if args.out:
        from mmengine.evaluator import DumpResults

        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    metrics = runner.test()
    summary = ' '.join(
        f'{key}={value:.4f}' if isinstance(value, float) else f'{key}={value}' for key, value in sorted(metrics.items())
    )
    print(f'test metrics: {summary}')
    return 0


if __name__ == '__main__':
    run_tool(main)
