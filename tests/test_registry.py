"""SwinBackbone resolves through MMEngine's registry from mmdet and mmseg scopes."""

import pytest
import torch
from mmengine.registry import DefaultScope

from mmswin.registry import MODELS

from .helpers import MINI_ARCH


def test_registry_is_a_child_of_mmengine_root():
    from mmengine.registry import MODELS as ROOT

    assert MODELS.scope == 'mmswin'
    assert ROOT.children['mmswin'] is MODELS


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_scoped_type_builds_from_downstream_scope(scope):
    import importlib

    registry = importlib.import_module(f'{scope}.registry').MODELS
    import mmswin.models  # noqa: F401  (what custom_imports does)

    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(dict(type='mmswin.SwinBackbone', arch=MINI_ARCH, out_indices=(0, 1)))
    assert type(model).__name__ == 'SwinBackbone'
    assert len(model(torch.randn(1, 3, 32, 32))) == 2


def test_engine_classes_resolve_by_name_without_importing_the_engine_package():
    """``type='mmswin.PlainCheckpointHook'`` (and the other hooks and optimiser wrappers)
    resolve in a fresh process: the registries import the engine modules themselves."""
    import subprocess
    import sys

    script = (
        'from mmengine.registry import DefaultScope, HOOKS, OPTIM_WRAPPERS\n'
        'import mmswin.registry\n'
        "with DefaultScope.overwrite_default_scope('mmswin'):\n"
        "    names = [HOOKS.get(f'mmswin.{n}') for n in ('PlainCheckpointHook', 'IterSeedHook', 'FiniteLossHook')]\n"
        "    wrappers = ('CPUAmpOptimWrapper', 'SkipNonFiniteOptimWrapper')\n"
        "    names += [OPTIM_WRAPPERS.get(f'mmswin.{n}') for n in wrappers]\n"
        'print([cls.__name__ for cls in names])\n'
    )
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1:] == [
        "['PlainCheckpointHook', 'IterSeedHook', 'FiniteLossHook', 'CPUAmpOptimWrapper', 'SkipNonFiniteOptimWrapper']"
    ], result.stdout[-2000:] + result.stderr[-2000:]
