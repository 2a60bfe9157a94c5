"""Peak training memory of a detector or segmentor step under the usual memory recipes.

A recipe is a set of overrides of the config: bf16 autocast (``amp``), backbone activation
checkpointing (``with_cp``), ``frozen_stages``. :func:`measure_recipes` builds the config's
model once per recipe, runs one training step (forward, backward, optimiser step) to create
the optimiser state, then measures a second one.

Accounting is tensor-level, not RSS: ``persistent`` is the bytes of parameters and optimiser
state held between steps (parameters counted once, shared storages too); ``step_peak`` is the
peak, during the measured step, of the running sum of every tensor allocation and free that
PyTorch's CPU allocator reports to the profiler (``profile_memory=True``: one signed
``[memory]`` record per allocation and per free, in time order). Their sum is the peak a
device would need for the tensors, before allocator caching and fragmentation.

:func:`scale_to_size` turns the peaks measured at two small inputs into an estimate for a
larger one by arithmetic (the line through the two, extended): an estimate, labelled so.
"""

from __future__ import annotations

import copy
import gc
import importlib
from typing import Callable, Optional, Sequence

import torch

# name -> (description, overrides)
RECIPES = {
    'fp32': ('fp32, no checkpointing', dict(amp=False, with_cp=False, frozen_stages=-1)),
    'bf16_amp': ('bf16 autocast (AMP)', dict(amp=True, with_cp=False, frozen_stages=-1)),
    'with_cp': ('fp32, with_cp=True', dict(amp=False, with_cp=True, frozen_stages=-1)),
    'amp_with_cp': ('bf16 autocast + with_cp=True', dict(amp=True, with_cp=True, frozen_stages=-1)),
    'frozen_stages': ('fp32, frozen_stages=1', dict(amp=False, with_cp=False, frozen_stages=1)),
}


def peak_allocated_bytes(step: Callable[[], object]) -> int:
    """Peak of the running sum of tensor allocations minus frees while ``step`` runs,
    relative to what was allocated before it (CPU tensors, from the profiler's records)."""
    from torch.profiler import ProfilerActivity, profile

    gc.collect()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    records = sorted(
        (event.start_ns(), event.nbytes())
        for event in prof.profiler.kineto_results.events()
        if event.name() == '[memory]' and event.device_type() == torch.autograd.DeviceType.CPU
    )
    running = peak = 0
    for _, nbytes in records:
        running += nbytes
        peak = max(peak, running)
    return peak


def tensor_bytes(tensors) -> int:
    """Bytes of the distinct storages behind ``tensors``."""
    seen: dict[int, int] = {}
    for tensor in tensors:
        if isinstance(tensor, torch.Tensor) and tensor.numel():
            storage = tensor.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def build_recipe(cfg, recipe: dict):
    """The model and optimiser wrapper of ``cfg`` with the recipe's overrides."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    from mmswin.engine.setup_runner import adapt_to_hardware, register_scope

    cfg = copy.deepcopy(cfg)  # building a model may write into its config (DINO's bbox_head)
    cfg.model.backbone.update(with_cp=recipe['with_cp'], frozen_stages=recipe['frozen_stages'], init_cfg=None)
    adapt_to_hardware(cfg, 'none')
    register_scope(cfg)
    optim_wrapper_cfg = cfg.optim_wrapper.copy()
    if recipe['amp']:
        optim_wrapper_cfg.update(type='mmswin.CPUAmpOptimWrapper', dtype='bfloat16')
        optim_wrapper_cfg.pop('loss_scale', None)
    registry = importlib.import_module(f'{cfg.default_scope}.registry')
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = registry.MODELS.build(cfg.model)
        model.init_weights()
        model.train()
        optim_wrapper = build_optim_wrapper(model, optim_wrapper_cfg)
    return model, optim_wrapper


def detection_batch(image_size: Sequence[int], batch_size: int, num_classes: int, seed: int = 0) -> dict:
    """Random images with 3 boxes and masks each, packed as MMDetection's loader packs them."""
    from mmdet.testing import demo_mm_inputs

    torch.manual_seed(seed)
    shape = (3, *image_size)
    return demo_mm_inputs(
        batch_size, [shape] * batch_size, num_items=[3] * batch_size, num_classes=num_classes, with_mask=True
    )


def measure_recipe(cfg, recipe: dict, image_size: Sequence[int], batch_size: int) -> dict:
    """Bytes of one training step of ``cfg`` under ``recipe`` (see the module docstring)."""
    from mmengine.registry import DefaultScope

    model, optim_wrapper = build_recipe(cfg, recipe)
    head = cfg.model.get('bbox_head') or cfg.model.get('panoptic_head') or {}
    batch = detection_batch(image_size, batch_size, head.get('num_classes', head.get('num_things_classes', 80)))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model.train_step(batch, optim_wrapper)  # creates the optimiser state
        optim_wrapper.zero_grad(set_to_none=True)
        trainable = [p for p in model.parameters() if p.requires_grad]
        state = [t for s in optim_wrapper.optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
        result = dict(
            params_bytes=tensor_bytes(model.parameters()),
            optimizer_state_bytes=tensor_bytes(state),
            grads_bytes=tensor_bytes(trainable),  # one gradient per trainable parameter
            trainable_params=sum(p.numel() for p in trainable),
            step_peak_bytes=peak_allocated_bytes(lambda: model.train_step(batch, optim_wrapper)),
        )
    result['persistent_bytes'] = result['params_bytes'] + result['optimizer_state_bytes']
    result['peak_bytes'] = result['persistent_bytes'] + result['step_peak_bytes']
    return result  # the model goes with this frame, before the next recipe's is built


def scale_to_size(small: dict, large: dict, small_pixels: int, large_pixels: int, target_pixels: int) -> int:
    """Estimated peak bytes at ``target_pixels`` per batch, by arithmetic (not a measurement):
    the line through the peaks measured at two sizes, extended to the target size. What does
    not grow with the input (weights, optimiser state, gradients, per-query work) is the
    intercept; what does (activations) the slope."""
    slope = (large['peak_bytes'] - small['peak_bytes']) / (large_pixels - small_pixels)
    return round(large['peak_bytes'] + slope * (target_pixels - large_pixels))


def measure_recipes(
    config: str,
    sizes: Sequence[Sequence[int]],
    batch_size: int = 1,
    recipes: Optional[Sequence[str]] = None,
    cfg_options: Optional[dict] = None,
    log: Callable[[str], None] = print,
) -> dict:
    """``{recipe: [measure_recipe(...) at each of sizes]}`` for ``config``, ``batch_size`` images a step."""
    from mmswin.engine.setup_runner import load_config

    names = list(recipes or RECIPES)
    unknown = [name for name in names if name not in RECIPES]
    if unknown:
        raise ValueError(f'unknown recipe(s) {unknown}; choose from {list(RECIPES)}')
    cfg = load_config(config, cfg_options)
    results = {}
    for name in names:
        results[name] = []
        for size in sizes:
            log(f'{name} ({RECIPES[name][0]}) at {batch_size}x{size[0]}x{size[1]} ...')
            results[name].append(measure_recipe(cfg, RECIPES[name][1], size, batch_size))
            log(f'{name}: peak {results[name][-1]["peak_bytes"] / 2**30:.2f} GiB')
    return results


def markdown_table(
    results: dict, sizes: Sequence[Sequence[int]], batch_size: int, target_size: Sequence[int], target_batch: int
) -> str:
    """The table of docs/memory_recipes.md: measured peaks at both sizes, and the estimate."""
    (h1, w1), (h2, w2) = sizes
    pixels = (h1 * w1 * batch_size, h2 * w2 * batch_size)
    target = target_size[0] * target_size[1] * target_batch
    gib = 2**30
    lines = [
        f'| recipe | params + optimiser state | peak at {batch_size}x{h1}x{w1} (measured) '
        f'| peak at {batch_size}x{h2}x{w2} (measured) '
        f'| at {target_batch}x{target_size[0]}x{target_size[1]} (scaled by arithmetic, not measured) |',
        '| --- | ---: | ---: | ---: | ---: |',
    ]
    for name, (small, large) in results.items():
        cells = (
            f'{small["persistent_bytes"] / gib:.2f} GiB',
            f'{small["peak_bytes"] / gib:.2f} GiB',
            f'{large["peak_bytes"] / gib:.2f} GiB',
            f'{scale_to_size(small, large, *pixels, target) / gib:.1f} GiB',
        )
        lines.append(f'| {RECIPES[name][0]} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)
