"""What the command-line tools share: scope set-up, pre-flight checks, safe checkpoints."""
from .cpu_amp import CPUAmpOptimWrapper
from .plain_checkpoint import PlainCheckpointHook

__all__ = ['CPUAmpOptimWrapper', 'PlainCheckpointHook']
