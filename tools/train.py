"""Train a detector or segmentor with a SwinBackbone (MMEngine Runner).

    python tools/train.py configs/mask_rcnn_swin_t.py
    python tools/train.py configs/upernet_swin_t.py --amp --work-dir work_dirs/upernet

The config's default_scope (mmdet or mmseg) decides which library runs it. Flags are
MMDetection's: --work-dir, --resume [CKPT], --amp, --auto-scale-lr, --cfg-options,
--launcher none|pytorch|slurm.
"""

import argparse

from mmswin.engine.preflight import run_tool
from mmswin.errors import NonFiniteLossError, PreflightError


def parse_args(argv=None):
    from mmswin.engine.cli import add_runner_arguments, parse_runner_args

    parser = argparse.ArgumentParser(description='Train a detector or segmentor with mmswin.SwinBackbone')
    parser.add_argument('config', help='config file, e.g. configs/mask_rcnn_swin_t.py')
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: work_dirs/<config name>)')
    parser.add_argument('--amp', action='store_true', help='mixed precision (fp16 on CUDA, bf16 on CPU)')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by total batch size / auto_scale_lr.base_batch_size',
    )
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from CKPT, or without a value from the newest checkpoint in the work dir',
    )
    add_runner_arguments(
        parser,
        'UNSAFE: load checkpoints (--resume, load_from, pretrained) with a full pickle, which runs any code '
        'in the file; only for files you trust that hold Python objects besides tensors',
    )
    return parse_runner_args(parser, argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.trust_checkpoint:
        from mmswin.checkpoint.io import trust_checkpoints

        trust_checkpoints()
    from mmswin.engine import setup_runner
    from mmswin.engine.config_checks import check_model_config, check_train_loop
    from mmswin.engine.preflight import check_checkpoints, check_datasets

    setup_runner.check_launcher(args.launcher)
    cfg = setup_runner.load_config(args.config, args.cfg_options)
    check_train_loop(cfg)
    setup_runner.register_scope(cfg)
    check_model_config(cfg)
    cfg.launcher = args.launcher
    setup_runner.set_work_dir(cfg, args.config, args.work_dir)
    if args.amp:
        setup_runner.enable_amp(cfg)
    if args.auto_scale_lr:
        cfg.setdefault('auto_scale_lr', {})
        if 'base_batch_size' not in cfg.auto_scale_lr:
            raise PreflightError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        from mmswin.engine.resume import newest_complete_checkpoint

        # None: nothing saved yet, so training starts from scratch (as MMEngine does).
        cfg.resume, cfg.load_from = True, newest_complete_checkpoint(cfg.work_dir)
    elif args.resume is not None:
        from mmswin.engine.resume import resume_checkpoint

        cfg.resume, cfg.load_from = True, resume_checkpoint(args.resume)

    from mmswin.datasets import ensure_demo_data

    ensure_demo_data(cfg)
    check_datasets(cfg, ('train_dataloader', 'val_dataloader'))
    check_checkpoints(cfg)
    setup_runner.adapt_to_hardware(cfg, args.launcher)

    runner = setup_runner.build_runner(cfg)
    per_process = cfg.train_dataloader.batch_size
    runner.logger.info(
        f'total batch size: {per_process * runner.world_size} '
        f'({per_process} per process x {runner.world_size} processes)'
    )
    runner.train()
    return 0


if __name__ == '__main__':
    run_tool(main, also={NonFiniteLossError: 1})
