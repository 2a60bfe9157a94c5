"""The ``mmswin`` registries.

Children of MMEngine's root registries, so a config whose ``default_scope`` is ``mmdet``
or ``mmseg`` can name ``type='mmswin.SwinBackbone'`` (or ``'mmswin.PlainCheckpointHook'``)
and MMEngine finds it here. Data sets (``type='mmswin.CheckedCocoDataset'``) resolve the
same way; their modules import MMDetection or MMSegmentation, so they are named one by
one and imported only when a config asks for an ``mmswin.`` data set.
"""

from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmswin', locations=['mmswin.models'])
# The engine modules that register into HOOKS / OPTIM_WRAPPERS / OPTIM_WRAPPER_CONSTRUCTORS (the package's own
# __init__ imports none of them, to keep the tools' start-up light).
ENGINE_MODULES = [
    f'mmswin.engine.{name}' for name in ('cpu_amp', 'finite_loss', 'iter_seed', 'layer_decay', 'plain_checkpoint')
]
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='mmswin', locations=ENGINE_MODULES)
OPTIM_WRAPPERS = Registry('optim wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope='mmswin', locations=ENGINE_MODULES)
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
    scope='mmswin',
    locations=ENGINE_MODULES,
)
DATASETS = Registry(
    'dataset',
    parent=MMENGINE_DATASETS,
    scope='mmswin',
    locations=['mmswin.datasets.checked_coco', 'mmswin.datasets.checked_seg'],
)
