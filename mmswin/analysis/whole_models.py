"""The whole Mask R-CNN and UperNet of the configs, with our backbone and with the peer's."""

from __future__ import annotations

import functools
import os
from typing import Callable

import torch
from torch import Tensor, nn

from .complexity import build_model, count_complexity
from .peers import MMDET, MMSEG, OURS, arch_kwargs
from .timing import Bench, log, memory_method, size_key


def peer_backbone_cfg(cfg, peer_type: str, with_cp: bool = False) -> dict:
    ours = cfg.model.backbone
    arch = ours.get('arch', 'tiny')
    return dict(
        type=peer_type,
        **(arch_kwargs(arch) if isinstance(arch, str) else dict(arch)),
        window_size=ours.get('window_size', 7),
        drop_path_rate=ours.get('drop_path_rate', 0.1),
        out_indices=tuple(ours.get('out_indices', (0, 1, 2, 3))),
        with_cp=with_cp,
    )


def share_weights(ours: nn.Module, peer: nn.Module) -> None:
    """Same weights in both models: the peer's backbone into ours (through our loader),
    everything else from ours into the peer."""
    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('ERROR')
    try:
        ours.backbone.load_state_dict(peer.backbone.state_dict())
    finally:
        logger.setLevel(level)
    rest = {k: v for k, v in ours.state_dict().items() if not k.startswith('backbone.')}
    missing, unexpected = peer.load_state_dict(rest, strict=False)
    assert not unexpected and all(k.startswith('backbone.') for k in missing), (missing, unexpected)


def detection_batch(batch: int, size, num_classes: int, device: torch.device, with_targets: bool):
    """Normalised images padded to 32 and DetDataSamples (with random boxes and masks)."""
    import numpy as np
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    height, width = size
    padded = (-(-height // 32) * 32, -(-width // 32) * 32)
    generator = torch.Generator().manual_seed(2)
    inputs = torch.randn(batch, 3, *padded, generator=generator).to(device)
    samples = []
    for _ in range(batch):
        sample = DetDataSample(
            metainfo=dict(
                img_shape=(height, width),
                ori_shape=(height, width),
                pad_shape=padded,
                batch_input_shape=padded,
                scale_factor=(1.0, 1.0),
            )
        )
        if with_targets:
            corners = torch.rand(4, 2, 2, generator=generator) * torch.tensor([width, height])
            boxes = torch.cat([corners.min(1).values, corners.max(1).values + 16], dim=1)
            boxes[:, 0::2].clamp_(0, width)
            boxes[:, 1::2].clamp_(0, height)
            masks = np.zeros((4, height, width), dtype=np.uint8)
            for i, (x1, y1, x2, y2) in enumerate(boxes.round().int().tolist()):
                masks[i, y1:y2, x1:x2] = 1
            sample.gt_instances = InstanceData(
                bboxes=boxes.to(device),
                labels=torch.randint(0, num_classes, (4,), generator=generator).to(device),
                masks=BitmapMasks(masks, height, width),
            )
        samples.append(sample)
    return inputs, samples


def segmentation_batch(batch: int, size, num_classes: int, device: torch.device, with_targets: bool):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    generator = torch.Generator().manual_seed(2)
    inputs = torch.randn(batch, 3, *size, generator=generator).to(device)
    samples = []
    for _ in range(batch):
        sample = SegDataSample(metainfo=dict(img_shape=tuple(size), ori_shape=tuple(size), pad_shape=tuple(size)))
        if with_targets:
            labels = torch.randint(0, num_classes, (1, *size), generator=generator)
            sample.gt_sem_seg = PixelData(data=labels.to(device))
        samples.append(sample)
    return inputs, samples


def model_runs(model: nn.Module, batch_fn, size, batch: int, train: bool, bench: Bench) -> Callable[[], None]:
    inputs, samples = batch_fn(batch, size, with_targets=train)
    if train:

        def step():
            for param in model.parameters():
                param.grad = None
            with bench.autocast():
                losses = model.loss(inputs, samples)
            loss = sum(
                v.float().sum() if isinstance(v, Tensor) else sum(x.float().sum() for x in v)
                for k, v in losses.items()
                if 'loss' in k
            )
            loss.backward()

        return step

    def run():
        with torch.no_grad(), bench.autocast():
            model.predict(inputs, samples)

    return run


def bench_models(args, bench: Bench) -> dict:
    from mmswin.engine.setup_runner import load_config

    tasks = (
        ('mask_rcnn', args.det_config, 'mmdet.SwinTransformer', MMDET, args.det_size),
        ('upernet', args.seg_config, 'mmseg.SwinTransformer', MMSEG, args.seg_size),
    )
    result: dict = {}
    for task, path, peer_type, peer, infer_size in tasks:
        if not os.path.isfile(path):
            result[task] = dict(skipped=f'config {path} not found')
            log(f'models: {task} skipped, config {path} not found')
            continue
        cfg = load_config(path)
        ours = build_model(cfg)
        theirs = build_model(cfg, peer_backbone_cfg(cfg, peer_type))
        share_weights(ours, theirs)
        models = {OURS: ours.to(bench.device), peer: theirs.to(bench.device)}
        if task == 'mask_rcnn':
            batch_fn = functools.partial(
                detection_batch, num_classes=cfg.model.roi_head.bbox_head.num_classes, device=bench.device
            )
        else:
            batch_fn = functools.partial(
                segmentation_batch, num_classes=cfg.model.decode_head.num_classes, device=bench.device
            )
        entry: dict = dict(config=path, peer=peer)
        for model in models.values():
            model.eval()
        log(f'models: {task} inference, batch 1, {size_key(infer_size)}')
        entry['inference'] = dict(
            size=size_key(infer_size),
            timing=bench.interleaved(
                {k: model_runs(m, batch_fn, infer_size, 1, False, bench) for k, m in models.items()},
                warmup=args.model_warmup,
                repeats=args.model_repeats,
            ),
        )
        for model in models.values():
            model.train()
        log(f'models: {task} training step, batch {args.train_batch}, {size_key(args.train_size)}')
        steps = {k: model_runs(m, batch_fn, args.train_size, args.train_batch, True, bench) for k, m in models.items()}
        entry['train_step'] = dict(
            size=size_key(args.train_size),
            batch=args.train_batch,
            timing=bench.interleaved(steps, warmup=args.model_warmup, repeats=args.model_repeats),
        )
        entry['train_memory'] = dict(
            method=memory_method(bench.device), peak_bytes={k: bench.peak_memory(step) for k, step in steps.items()}
        )
        entry['params'] = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}
        if args.model_flops:
            entry['flops'] = model_flops(cfg, peer_type, infer_size)
        timing = entry['inference']['timing']
        memory = entry['train_memory']['peak_bytes']
        entry['ratios'] = dict(
            inference_speedup=timing[peer]['median_s'] / timing[OURS]['median_s'],
            train_step_speedup=entry['train_step']['timing'][peer]['median_s']
            / entry['train_step']['timing'][OURS]['median_s'],
            train_memory_ratio=memory[OURS] / memory[peer],
        )
        result[task] = entry
        del models, ours, theirs
    return result


def model_flops(cfg, peer_type: str, size) -> dict:
    """Whole-model multiply-adds, with our backbone and with the peer's (:mod:`.complexity`)."""
    ours = count_complexity(cfg, tuple(size))
    theirs = count_complexity(cfg, tuple(size), backbone=peer_backbone_cfg(cfg, peer_type))
    return dict(
        size=size_key(size),
        mmswin=ours.flops,
        peer=theirs.flops,
        mmswin_backbone=ours.backbone_flops,
        peer_backbone=theirs.backbone_flops,
        unit='multiply-adds',
    )
