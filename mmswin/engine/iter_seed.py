"""Per-iteration seeding, so a resumed run repeats the uninterrupted run's randomness."""

from __future__ import annotations

import random

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mmswin.registry import HOOKS


@HOOKS.register_module()
class IterSeedHook(Hook):
    """Seed torch, numpy and ``random`` at the start of every training iteration from
    (config seed, iteration, rank).

    MMEngine does not save the generators' states, so after ``--resume`` the model's
    random choices (RoI sampling, drop path, dropout) would differ from an uninterrupted
    run's. Seeding from the iteration makes them a function of where training is, not of
    its history. Data augmentation runs in the loader's workers, which MMEngine seeds
    and replays on resume. Does nothing when the config sets no seed.
    """

    priority = 'VERY_HIGH'

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if runner.seed is None:
            return
        seed = (int(runner.seed) * 1_000_003 + runner.iter * 9_973 + get_rank()) % (2**31)
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
