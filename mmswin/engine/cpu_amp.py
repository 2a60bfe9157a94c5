"""Mixed precision on CPU: MMEngine's AmpOptimWrapper only accepts accelerators."""

from __future__ import annotations

import contextlib

import torch
from mmengine.optim import OptimWrapper

from mmswin.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """bf16 autocast for the forward pass on CPU; bf16 has fp32's range, so no loss scaling."""

    def __init__(self, *args, dtype: str = 'bfloat16', **kwargs):
        super().__init__(*args, **kwargs)
        self.cast_dtype = getattr(torch, dtype)

    @contextlib.contextmanager
    def optim_context(self, model: torch.nn.Module):
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield
