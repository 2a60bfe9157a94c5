"""Stop on a NaN or infinite loss, or skip such iterations when the config asks to."""

from __future__ import annotations

import math

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper

from mmswin.errors import NonFiniteLossError
from mmswin.registry import HOOKS, OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class SkipNonFiniteOptimWrapper(OptimWrapper):
    """An OptimWrapper that drops the update of an iteration whose loss is not finite."""

    def update_params(self, loss: torch.Tensor, step_kwargs=None, zero_kwargs=None) -> None:
        if not bool(torch.isfinite(loss)):
            print_log(f'skipped an update: the loss is {loss.item()}', logger='current', level=30)
            self.zero_grad(**(zero_kwargs or {}))
            return
        super().update_params(loss, step_kwargs, zero_kwargs)


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError`, naming the iteration, when the loss is NaN or
    infinite, before any checkpoint of the damaged weights is written. Iterations that
    :class:`SkipNonFiniteOptimWrapper` skipped are only logged."""

    priority = 'VERY_HIGH'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        loss = (outputs or {}).get('loss')
        if loss is None:
            return
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        if math.isfinite(value) or isinstance(runner.optim_wrapper, SkipNonFiniteOptimWrapper):
            return
        raise NonFiniteLossError(
            f'the loss is {value} at iteration {runner.iter + 1}; training stopped before saving these weights. '
            'Lower the learning rate or add optim_wrapper.clip_grad, resume from the last checkpoint, or skip such '
            "iterations with optim_wrapper.type='mmswin.SkipNonFiniteOptimWrapper'"
        )
