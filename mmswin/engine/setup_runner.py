"""Turn a config file and command-line flags into a ready MMEngine Runner.

One set of tools serves detection and segmentation: the config's ``default_scope``
(``mmdet`` or ``mmseg``) decides which library's modules are registered.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Optional

from mmengine.config import Config, DictAction  # noqa: F401  (DictAction re-exported for the tools)
from mmengine.logging import print_log

from mmswin.errors import PreflightError

SUPPORTED_SCOPES = ('mmdet', 'mmseg')


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """The config at ``path`` with the ``--cfg-options`` merged in. A missing file, a syntax
    error in it or its ``_base_`` files, a missing ``_base_`` file, an error raised by a config
    file's own code, an override that does not fit the config's value, or a scope the tools
    do not run is a :class:`PreflightError` naming the file (and line) or the item."""
    from .config_checks import check_cfg_options, check_config_files, config_execution_error

    if not os.path.isfile(path):
        raise PreflightError(
            f"config file not found: '{path}'; configs live under configs/, e.g. "
            'configs/demo/mask_rcnn_swin_t_shapes.py'
        )
    config_files = check_config_files(path)
    try:
        cfg = Config.fromfile(path)
    except Exception as error:  # the config's own code failed: name its file and line
        named = config_execution_error(error, config_files)
        if named is None:
            raise
        raise named from None
    if cfg_options:
        check_cfg_options(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    scope = cfg.get('default_scope')
    if scope not in SUPPORTED_SCOPES:
        raise PreflightError(
            f"config '{path}' has default_scope={scope!r}; mmswin's tools run MMDetection "
            f"('mmdet') and MMSegmentation ('mmseg') configs"
        )
    return cfg


def register_scope(cfg: Config) -> None:
    """Register mmswin and the config's downstream library in MMEngine's registries."""
    from mmswin.registry import HOOKS, MODELS, OPTIM_WRAPPERS

    for registry in (MODELS, HOOKS, OPTIM_WRAPPERS):
        registry.import_from_location()

    library = importlib.import_module(f'{cfg.default_scope}.utils')
    library.register_all_modules(init_default_scope=False)


# The environment each launcher's starter sets, and the starter to use.
LAUNCHER_ENVIRONMENT = {
    'pytorch': (
        ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'),
        'tools/dist_train.sh or tools/dist_test.sh (torchrun)',
    ),
    'slurm': (('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'), 'tools/slurm_train.sh or tools/slurm_test.sh (srun)'),
}


def check_launcher(launcher: str) -> None:
    """``--launcher pytorch`` (or ``slurm``) in a process its starter did not start is
    named with the starter to use, instead of failing in the process group's rendezvous."""
    if launcher not in LAUNCHER_ENVIRONMENT:
        return
    names, starter = LAUNCHER_ENVIRONMENT[launcher]
    missing = [name for name in names if name not in os.environ]
    if missing:
        tool = os.path.basename(sys.argv[0]) or 'the tool'
        raise PreflightError(
            f'--launcher {launcher}: {", ".join(missing)} not set, so {tool} was not started by its launcher; '
            f'start it with {starter}, or leave out --launcher to run one process'
        )


def _replace_sync_bn(node, path: str, changed: list) -> None:
    if isinstance(node, dict):
        if node.get('type') in ('SyncBN', 'MMSyncBN'):
            node['type'] = 'BN'
            changed.append(path)
        for key, value in node.items():
            _replace_sync_bn(value, f'{path}.{key}', changed)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            _replace_sync_bn(value, f'{path}[{index}]', changed)


def adapt_to_hardware(cfg: Config, launcher: str) -> None:
    """Make a GPU recipe run where it is launched.

    SyncBN needs a distributed CUDA job; elsewhere it becomes BN (logged). The process
    group backend follows the hardware (NCCL on CUDA, gloo on CPU) unless the config
    sets ``env_cfg.dist_cfg.backend``.
    """
    check_launcher(launcher)
    import torch

    on_cuda = torch.cuda.is_available()
    if launcher == 'none' or not on_cuda:
        changed: list = []
        _replace_sync_bn(cfg.model, 'model', changed)
        if changed:
            reason = 'single process' if launcher == 'none' else 'CPU (PyTorch has no SyncBN there)'
            print_log(f'SyncBN -> BN for {reason}: ' + ', '.join(changed), logger='current')
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    dist_cfg.setdefault('backend', 'nccl' if on_cuda else 'gloo')
    if launcher != 'none' and not on_cuda:
        # DDP over CPU modules takes device_ids=None (MMEngine passes the local rank).
        wrapper = dict(cfg.get('model_wrapper_cfg') or {})
        wrapper.update(type=wrapper.get('type', 'MMDistributedDataParallel'), device_ids=None)
        wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
        cfg.model_wrapper_cfg = wrapper
        _init_cpu_process_group(launcher, dist_cfg)


def _init_cpu_process_group(launcher: str, dist_cfg: dict) -> None:
    """Start the gloo group here: MMEngine's ``init_dist`` calls ``torch.cuda.set_device``,
    which does not exist on a CPU build. The Runner then finds the group initialised."""
    import datetime

    import torch.distributed as dist

    if dist.is_initialized():
        return
    if launcher != 'pytorch':
        raise PreflightError(f'--launcher {launcher} needs CUDA; on CPU launch with tools/dist_train.sh (torchrun)')
    timeout = datetime.timedelta(seconds=int(dist_cfg.get('timeout', 1800)))
    dist.init_process_group(backend=dist_cfg['backend'], timeout=timeout)


def enable_amp(cfg: Config) -> None:
    """``--amp``: fp16 with dynamic loss scaling on CUDA, bf16 autocast on CPU."""
    import torch

    optim_wrapper = cfg.optim_wrapper
    if optim_wrapper.get('type') == 'AmpOptimWrapper':
        print_log('AMP is already enabled in the config', logger='current')
    optim_wrapper.type = 'AmpOptimWrapper'
    if torch.cuda.is_available():
        optim_wrapper.setdefault('loss_scale', 'dynamic')
    else:
        optim_wrapper.pop('loss_scale', None)
        optim_wrapper.type = 'mmswin.CPUAmpOptimWrapper'


def set_work_dir(cfg: Config, config_path: str, work_dir: Optional[str]) -> None:
    """``--work-dir``, else the config's ``work_dir``, else ``work_dirs/<config name>``; one
    that cannot be a folder is refused here, before the model and data are built."""
    from .preflight import check_output_folder

    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = os.path.join('./work_dirs', os.path.splitext(os.path.basename(config_path))[0])
    check_output_folder(cfg.work_dir, '--work-dir' if work_dir is not None else "the config's work_dir")


def enable_show_dir(cfg: Config, show_dir: str) -> None:
    """Have the scope's visualization hook draw test predictions (beside ground truth)."""
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise PreflightError('--show-dir needs default_hooks.visualization in the config')
    hook.draw = True
    if cfg.default_scope == 'mmdet':
        hook.test_out_dir = show_dir  # under the run's log folder
    else:
        # MMSegmentation's hook draws through the visualizer, which saves under save_dir.
        hook.interval = min(hook.get('interval', 50), 10)
        cfg.visualizer.save_dir = os.path.join(cfg.work_dir, show_dir)


def _drop_persistent_workers_without_workers(cfg: Config) -> None:
    # torch refuses persistent_workers=True with num_workers=0; a user lowering the
    # worker count on the command line should not have to know that.
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(key)
        if loader and loader.get('num_workers', 0) == 0 and loader.get('persistent_workers'):
            loader.persistent_workers = False


def build_runner(cfg: Config):
    """Build the Runner, with checkpoints that the safe ``weights_only`` loader accepts."""
    _drop_persistent_workers_without_workers(cfg)
    from .atomic_runner import AtomicCheckpointRunner
    from .config_checks import backbone_error
    from .plain_checkpoint import PlainCheckpointHook

    try:
        if 'runner_type' in cfg:
            from mmengine.registry import RUNNERS

            runner = RUNNERS.build(cfg)
        else:
            runner = AtomicCheckpointRunner.from_cfg(cfg)
    except (ValueError, TypeError) as error:
        # The backbone's arguments, refused while the model is built: one line, not the chain.
        named = backbone_error(cfg, error)
        if named is None:
            raise
        raise named from None
    if not any(isinstance(hook, PlainCheckpointHook) for hook in runner.hooks):
        runner.register_hook(PlainCheckpointHook())
    return runner
