"""What the command-line tools share: scope set-up, pre-flight checks, safe checkpoints.

The registered hooks and optimiser wrappers are imported on first use (and by
:func:`import_registered_modules`), not with the package: a tool that only parses its
flags or finds a missing config file answers in about a second, instead of first
importing torch and MMEngine's optimisers (about 4 s).
"""

import importlib

# Public name -> the submodule that defines (and registers) it.
_EXPORTS = {
    'CPUAmpOptimWrapper': 'cpu_amp',
    'FiniteLossHook': 'finite_loss',
    'IterSeedHook': 'iter_seed',
    'NonFiniteLossError': 'errors',
    'PlainCheckpointHook': 'plain_checkpoint',
    'SkipNonFiniteOptimWrapper': 'finite_loss',
}
__all__ = sorted(_EXPORTS) + ['import_registered_modules']


def import_registered_modules() -> None:
    """Import every submodule that registers a hook or optimiser wrapper."""
    from mmswin.registry import ENGINE_MODULES

    for module in ENGINE_MODULES:
        importlib.import_module(module)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f'.{_EXPORTS[name]}', __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
