"""What the command-line tools share: scope set-up, pre-flight checks, safe checkpoints."""

from .cpu_amp import CPUAmpOptimWrapper
from .finite_loss import FiniteLossHook, NonFiniteLossError, SkipNonFiniteOptimWrapper
from .iter_seed import IterSeedHook
from .plain_checkpoint import PlainCheckpointHook

__all__ = [
    'CPUAmpOptimWrapper',
    'FiniteLossHook',
    'IterSeedHook',
    'NonFiniteLossError',
    'PlainCheckpointHook',
    'SkipNonFiniteOptimWrapper',
]
