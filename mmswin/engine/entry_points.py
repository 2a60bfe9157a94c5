"""What tools/train.py and tools/test.py run, after their flags are parsed.

Both check everything that can be checked (config, launcher, data sets, checkpoints,
output paths) before the runner is built, and raise a one-line
:class:`~mmswin.errors.PreflightError` naming the flag or file and the fix.
"""

from __future__ import annotations

import argparse
import os

from mmswin.errors import PreflightError


def train(args: argparse.Namespace) -> int:
    """Train ``args.config`` with tools/train.py's flags (``--work-dir``, ``--amp``,
    ``--auto-scale-lr``, ``--resume [CKPT]``, ``--cfg-options``, ``--trust-checkpoint``,
    ``--launcher``); returns the exit code."""
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


def test(args: argparse.Namespace) -> int:
    """Evaluate ``args.checkpoint`` (a file, or a work dir: :func:`newest_checkpoint`) on
    ``args.config``'s test set with tools/test.py's flags; returns the exit code."""
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
