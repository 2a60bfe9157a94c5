"""Each new config builds, trains one iteration and predicts, on CPU, on tiny random inputs.

The backbone is shrunk (32 wide, two blocks a stage) and the heads told its widths; every
other setting (window size, pretrain size, with_cp, the heads, losses, assigners, the
optimiser with its parameter-wise rules and gradient clipping) is the config's own. The
large-scale-jitter pad of Mask2Former shrinks with the input. The variants of one family
that differ only in what the shrink replaces run in the slow suite.
"""

from __future__ import annotations

import importlib
import math
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from mmswin.engine.setup_runner import adapt_to_hardware, register_scope

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_ARCH = dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8))
IMAGE = (3, 64, 96)  # not a multiple of window 7 or 12: the padded path runs

# One config per family in the default suite (DINO's also covers window 12, pretrain size 384
# and with_cp); Cascade's 4conv1fc heads cost more than the rest together, so it runs as slow.
DEFAULT = [
    'retinanet_swin_t_1x.py',
    'mask2former_swin_t_coco_panoptic.py',
    'mask2former_swin_t_coco_instance.py',
    'dino_5scale_swin_l_12e.py',
    'mask2former_swin_t_ade20k.py',
]
SLOW = [
    'mask_rcnn_swin_t_3x_layer_decay.py',
    'cascade_mask_rcnn_swin_t_3x.py',
    'mask2former_swin_b_ade20k.py',
    'cascade_mask_rcnn_swin_s_3x.py',
    'cascade_mask_rcnn_swin_b_3x.py',
    'mask2former_swin_s_coco_panoptic.py',
    'mask2former_swin_b_coco_panoptic.py',
    'mask2former_swin_b_in22k_coco_panoptic.py',
    'mask2former_swin_l_coco_panoptic.py',
    'mask2former_swin_s_coco_instance.py',
    'dino_5scale_swin_l_36e.py',
    'mask2former_swin_s_ade20k.py',
    'mask2former_swin_b_in22k_ade20k.py',
    'mask2former_swin_l_ade20k.py',
]


def tiny_config(name: str) -> Config:
    """The config with a 32-wide backbone, no pretrained file, and inputs padded to IMAGE."""
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', name))
    backbone = cfg.model.backbone
    backbone.arch = TINY_ARCH
    backbone.init_cfg = None
    widths = [TINY_ARCH['embed_dims'] * 2**i for i in backbone.get('out_indices', (0, 1, 2, 3))]
    if 'neck' in cfg.model:
        cfg.model.neck.in_channels = widths
    head = cfg.model.get('panoptic_head') or cfg.model.get('decode_head')
    if head is not None and 'neck' not in cfg.model:
        head.in_channels = widths
    preprocessor = cfg.model.data_preprocessor
    for augment in preprocessor.get('batch_augments') or []:
        augment.size = IMAGE[1:]
    if preprocessor.get('size') is not None:
        preprocessor.size = IMAGE[1:]
    _fewer_samples(cfg.model)
    adapt_to_hardware(cfg, 'none')  # SyncBN -> BN, as the tools do on one process
    return cfg


def _fewer_samples(model: dict) -> None:
    """Fewer RoIs, proposals and mask points: the cost of a step, not what it computes."""
    train_cfg, test_cfg = model.get('train_cfg') or {}, model.get('test_cfg') or {}
    if 'rpn_proposal' in train_cfg:
        train_cfg.rpn_proposal.update(nms_pre=100, max_per_img=16)
        test_cfg.rpn.update(nms_pre=100, max_per_img=16)
        stages = train_cfg.rcnn if isinstance(train_cfg.rcnn, list) else [train_cfg.rcnn]
        for stage in stages:
            stage.sampler.num = 8
    head = model.get('panoptic_head') or model.get('decode_head') or {}
    for owner in (train_cfg, head.get('train_cfg') or {}):
        if 'num_points' in owner:
            owner.num_points = 1024
    # Fewer transformer layers and queries: every layer type still runs.
    if 'transformer_decoder' in head:
        head.pixel_decoder.encoder.num_layers = 1
        head.transformer_decoder.num_layers = 3  # one per feature level
    if model.type == 'DINO':
        model.encoder.num_layers = model.decoder.num_layers = 2
        model.num_queries = 30  # at most the tokens of a tiny input's five levels
        model.dn_cfg.group_cfg.num_dn_queries = 10


def detection_batch(cfg: Config, batch_size: int = 2) -> dict:
    from mmdet.testing import demo_mm_inputs

    head = cfg.model.get('panoptic_head') or cfg.model.get('bbox_head') or {}
    panoptic = cfg.model.type == 'Mask2Former' and cfg.model.test_cfg.get('panoptic_on', False)
    num_classes = head.get('num_things_classes', head.get('num_classes', 80))
    batch = demo_mm_inputs(
        batch_size,
        [IMAGE] * batch_size,
        num_items=[3] * batch_size,
        num_classes=num_classes,
        with_mask=True,
        with_semantic=panoptic,
    )
    if panoptic:  # stuff classes follow the things in the semantic map
        for sample in batch['data_samples']:
            sample.gt_sem_seg.sem_seg.clamp_(max=num_classes + head.num_stuff_classes - 1)
    return batch


def segmentation_batch(cfg: Config, batch_size: int = 2) -> dict:
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    generator = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(batch_size):
        inputs.append(torch.randint(0, 256, IMAGE, generator=generator, dtype=torch.uint8))
        sample = SegDataSample(metainfo=dict(img_shape=IMAGE[1:], ori_shape=IMAGE[1:], pad_shape=IMAGE[1:]))
        labels = torch.randint(0, 4, (1, *IMAGE[1:]), generator=generator)
        sample.gt_sem_seg = PixelData(data=labels)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def train_and_predict(name: str) -> None:
    cfg = tiny_config(name)
    register_scope(cfg)
    registry = importlib.import_module(f'{cfg.default_scope}.registry')
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = registry.MODELS.build(cfg.model)
        model.init_weights()
        batch = (segmentation_batch if cfg.default_scope == 'mmseg' else detection_batch)(cfg)
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        before = {n: p.detach().clone() for n, p in model.backbone.named_parameters() if p.requires_grad}
        model.train()
        losses = model.train_step(batch, optim_wrapper)
        assert losses and all(math.isfinite(float(v.detach())) for v in losses.values()), losses
        moved = [n for n, p in model.backbone.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
        assert moved, 'the training step left every backbone parameter unchanged'
        model.eval()
        with torch.no_grad():
            results = model.test_step(batch)
    assert len(results) == len(batch['inputs'])
    for result in results:
        if cfg.default_scope == 'mmseg':
            assert tuple(result.pred_sem_seg.data.shape[-2:]) == IMAGE[1:]
        elif 'pred_panoptic_seg' in result:
            assert tuple(result.pred_panoptic_seg.sem_seg.shape[-2:]) == IMAGE[1:]
        else:
            assert 'pred_instances' in result and result.pred_instances.bboxes.shape[-1] == 4


@pytest.mark.parametrize('name', DEFAULT)
def test_config_trains_one_iteration_and_predicts(name):
    train_and_predict(name)


@pytest.mark.slow
@pytest.mark.parametrize('name', SLOW)
def test_config_variant_trains_one_iteration_and_predicts(name):
    train_and_predict(name)


def test_every_new_config_runs_here():
    shipped = {n for n in os.listdir(os.path.join(ROOT, 'configs')) if n.endswith('.py')}
    new_families = ('cascade_', 'retinanet_', 'mask2former_', 'dino_')
    new = {n for n in shipped if n.startswith(new_families)} | {'mask_rcnn_swin_t_3x_layer_decay.py'}
    assert new == set(DEFAULT) | set(SLOW)
