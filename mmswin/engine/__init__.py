"""What the command-line tools share: scope set-up, pre-flight checks, safe checkpoints.

The hooks and optimiser wrappers are imported on first use (by name here, or by the
mmswin registries, which list their modules), not with the package: a tool that only
parses its flags or finds a missing config file answers without importing torch and
MMEngine's optimisers.
"""

import importlib

# Public name -> the submodule that defines (and registers) it.
_EXPORTS = {
    'CPUAmpOptimWrapper': 'cpu_amp',
    'FiniteLossHook': 'finite_loss',
    'IterSeedHook': 'iter_seed',
    'PlainCheckpointHook': 'plain_checkpoint',
    'SkipNonFiniteOptimWrapper': 'finite_loss',
    'SwinLayerDecayOptimWrapperConstructor': 'layer_decay',
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f'.{_EXPORTS[name]}', __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
