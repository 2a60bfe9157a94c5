"""Evaluate a checkpoint on the config's test set (COCO bbox/segm AP, or mIoU).

python tools/test.py configs/mask_rcnn_swin_t.py work_dirs/mask_rcnn_swin_t/epoch_12.pth

The checkpoint loads weights-only and is checked against its checksum file;
``--trust-checkpoint`` loads a full pickle instead (unsafe: it runs any code the file
carries). ``--out`` is written after the metrics are printed, all at once.
"""

import argparse
import os

from mmswin.engine.preflight import run_tool
from mmswin.errors import PreflightError


def parse_args(argv=None):
    from mmswin.engine.cli import add_runner_arguments, parse_runner_args

    parser = argparse.ArgumentParser(description='Test a detector or segmentor with mmswin.SwinBackbone')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file (.pth), or a work dir to use its newest checkpoint')
    parser.add_argument('--work-dir', help='where the evaluation log goes (default: work_dirs/<config name>)')
    parser.add_argument('--out', help='also dump the raw predictions to this .pkl file (after the metrics)')
    parser.add_argument('--show-dir', help='save pictures of the predictions under <work dir>/<timestamp>/SHOW_DIR')
    add_runner_arguments(parser)
    return parse_runner_args(parser, argv)


def newest_checkpoint(work_dir: str) -> str:
    """The checkpoint a work dir's ``last_checkpoint`` file points to, else (no such file,
    or it names a file that is gone) the newest complete ``iter_N.pth``/``epoch_N.pth``."""
    pointer = os.path.join(work_dir, 'last_checkpoint')
    if os.path.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip()
        if named and os.path.isfile(named):
            return named
    from mmswin.engine.resume import newest_complete_checkpoint

    found = newest_complete_checkpoint(work_dir)
    if found is not None:
        return found
    if work_dir.rstrip(os.sep).endswith('.pth'):
        raise PreflightError(f"checkpoint '{work_dir}' is a directory, not a checkpoint file; pass the .pth file")
    raise PreflightError(
        f"no checkpoint in '{work_dir}' (no last_checkpoint file naming one, no complete iter_N.pth or "
        'epoch_N.pth); train first or pass a .pth file'
    )


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmswin.engine import setup_runner
    from mmswin.engine.config_checks import check_model_config
    from mmswin.engine.preflight import check_checkpoint_file, check_datasets, check_output_file

    if args.out:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise PreflightError(f"--out '{args.out}': the predictions are pickled; give a .pkl path")
        check_output_file(args.out, '--out', 'results.pkl')
    if args.trust_checkpoint:
        from mmswin.checkpoint.io import trust_checkpoints

        trust_checkpoints()
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

    # An evaluation runner cannot train, so it leaves the work dir's training lock alone.
    cfg.train_dataloader = cfg.train_cfg = cfg.optim_wrapper = cfg.param_scheduler = None
    runner = setup_runner.build_runner(cfg)
    if args.out:
        from mmswin.engine.predictions import PredictionCollector, write_predictions

        collector = PredictionCollector(out_file_path=args.out)
        runner.test_evaluator.metrics.append(collector)
    metrics = runner.test()
    summary = ' '.join(
        f'{key}={value:.4f}' if isinstance(value, float) else f'{key}={value}' for key, value in sorted(metrics.items())
    )
    print(f'test metrics: {summary}', flush=True)
    if args.out and write_predictions(collector):
        print(f'predictions written to {args.out}')
    return 0


if __name__ == '__main__':
    run_tool(main)
