"""Parameters and FLOPs of a config's model and of its backbone, at a given input size.

FLOPs are multiply-adds of the work the model's default path runs
(:func:`mmswin.analysis.flops.count_flops`), on a randomly initialised model. A
two-stage detector's RoI heads are counted for ``test_cfg.rpn.max_per_img`` proposals
(the mask head for the first 100, as MMDetection's ``_forward`` does), so the figure does
not depend on what an untrained RPN happens to propose.
"""

from __future__ import annotations

import copy
import importlib
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from mmswin.errors import PreflightError

if TYPE_CHECKING:  # torch loads when counting starts, after the arguments are checked
    from torch import nn

# Mask head RoIs in MMDetection's StandardRoIHead.forward (``rois[:100]``).
MASK_HEAD_ROIS = 100


@dataclass
class Complexity:
    """What :func:`count_complexity` measured, in plain units (parameters, multiply-adds)."""

    params: int
    backbone_params: int
    flops: int
    backbone_flops: int
    input_size: tuple[int, int]  # (H, W) the model saw, after padding to the size divisor
    requested_size: Optional[tuple[int, int]]  # (H, W) asked for
    proposals: Optional[int]  # RoIs fed to a two-stage detector's RoI heads, else None


def test_input_size(cfg) -> tuple[int, int]:
    """The (H, W) a config's published test figures refer to.

    Segmentation: the training crop (``model.data_preprocessor.size``), 512x512 for
    ADE20K. Detection: the test pipeline's ``Resize`` scale, 800x1333 for COCO
    (MMDetection writes scales as (long, short) = (W, H) for landscape images).
    """
    if cfg.default_scope == 'mmseg':
        size = cfg.model.get('data_preprocessor', {}).get('size') or cfg.get('crop_size')
        if size:
            return int(size[0]), int(size[1])
    else:
        for transform in test_pipeline(cfg):
            if transform.get('type', '').split('.')[-1] == 'Resize' and transform.get('scale'):
                long_side, short_side = max(transform['scale']), min(transform['scale'])
                return int(short_side), int(long_side)
    raise PreflightError(f'cannot tell the test size of this {cfg.default_scope} config; pass --shape H W')


def test_pipeline(cfg) -> list:
    """The transforms of the config's test data set (through dataset wrappers)."""
    dataset = cfg.test_dataloader.dataset
    while 'pipeline' not in dataset and 'dataset' in dataset:
        dataset = dataset.dataset
    return list(dataset.get('pipeline', []))


def padded_size(cfg, size: tuple[int, int]) -> tuple[int, int]:
    """``size`` padded as the model's data preprocessor pads a test image (to a multiple
    of ``pad_size_divisor`` / ``size_divisor``)."""
    preprocessor = cfg.model.get('data_preprocessor') or {}
    divisor = preprocessor.get('pad_size_divisor') or preprocessor.get('size_divisor') or 1
    return tuple(-(-side // divisor) * divisor for side in size)


def build_model(cfg, backbone: Optional[dict] = None) -> nn.Module:
    """The config's model with random weights (seeded, no pretrained file read), SyncBN
    as BN, in eval mode; ``backbone`` replaces the config's backbone. ``cfg`` is not changed."""
    import torch
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import DefaultScope

    from mmswin.engine.setup_runner import register_scope

    register_scope(cfg)
    model_cfg = copy.deepcopy(cfg.model)
    if backbone is not None:
        model_cfg.backbone = copy.deepcopy(backbone)
    if model_cfg.get('backbone') is not None:
        model_cfg.backbone.init_cfg = None
    models = importlib.import_module(f'{cfg.default_scope}.registry').MODELS
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = models.build(model_cfg)
    model = revert_sync_batchnorm(model)
    model.eval()  # (some OpenMMLab modules' train() returns None: no chaining)
    return model


def test_samples(scope: str, height: int, width: int) -> list:
    """One data sample of an unscaled ``height x width`` test image, for heads that read
    image metas (DETR-like detectors, Mask2Former)."""
    shape = (height, width)
    meta = dict(img_shape=shape, ori_shape=shape, pad_shape=shape, batch_input_shape=shape, scale_factor=(1.0, 1.0))
    if scope == 'mmseg':
        from mmseg.structures import SegDataSample

        return [SegDataSample(metainfo=meta)]
    from mmdet.structures import DetDataSample

    return [DetDataSample(metainfo=meta)]


def counting_module(model: nn.Module, scope: str, height: int, width: int) -> nn.Module:
    """The module the counter runs, as ``forward(inputs)``.

    A two-stage detector: what it computes at test time (features, the RPN head, and the
    RoI heads on ``test_cfg.rpn.max_per_img`` fixed boxes; ``num_proposals`` says how
    many). Other models: ``model._forward(inputs, samples)``, the ``mode='tensor'`` path,
    with the metas of one unscaled test image.
    """
    import torch
    from torch import nn

    samples = test_samples(scope, height, width)

    class TensorForward(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, inputs):
            head = getattr(self.model, 'decode_head', None)
            if head is not None and 'batch_data_samples' in inspect.signature(head.forward).parameters:
                # MMSegmentation's _forward calls a Mask2Former head without the metas it needs
                return head.forward(self.model.extract_feat(inputs), samples)
            return self.model._forward(inputs, samples)

    class TwoStageTestForward(nn.Module):
        def __init__(self):
            super().__init__()
            from mmengine.structures import InstanceData

            self.model = model
            self.num_proposals = int(model.test_cfg.rpn.max_per_img)
            corners = torch.rand(self.num_proposals, 2, 2, generator=torch.Generator().manual_seed(0))
            corners = corners * torch.tensor([width, height])
            boxes = torch.cat([corners.min(1).values, corners.max(1).values + 1.0], dim=1)  # [P, 4] x1 y1 x2 y2
            self.proposals = [InstanceData(bboxes=boxes)]

        def forward(self, inputs):
            features = self.model.extract_feat(inputs)
            return self.model.rpn_head(features), self.model.roi_head.forward(features, self.proposals, samples)

    two_stage = hasattr(model, 'roi_head') and getattr(model, 'with_rpn', False)
    return TwoStageTestForward() if two_stage else TensorForward()


def count_complexity(cfg, size: Optional[tuple[int, int]] = None, backbone: Optional[dict] = None) -> Complexity:
    """Parameters and multiply-adds of ``cfg``'s model at ``size`` (default: its test
    size, padded as the data preprocessor pads it); ``backbone`` replaces the config's."""
    import torch

    from .flops import count_flops

    requested = tuple(size) if size else test_input_size(cfg)
    height, width = padded_size(cfg, requested)
    model = build_model(cfg, backbone)
    wrapper = counting_module(model, cfg.default_scope, height, width)
    inputs = torch.zeros(1, 3, height, width)
    flops = count_flops(wrapper, inputs)
    return Complexity(
        params=sum(p.numel() for p in model.parameters()),
        backbone_params=sum(p.numel() for p in model.backbone.parameters()),
        flops=flops[''],
        backbone_flops=flops['model.backbone'],
        input_size=(height, width),
        requested_size=requested,
        proposals=getattr(wrapper, 'num_proposals', None),
    )


def format_count(value: int) -> str:
    """``27520698`` -> ``'27.52 M'``, ``104968281600`` -> ``'104.97 G'``, ``5120`` -> ``'5.12 K'``."""
    for scale, unit in ((1e9, 'G'), (1e6, 'M'), (1e3, 'K')):
        if value >= scale:
            return f'{value / scale:.2f} {unit}'
    return str(value)


def complexity_report(config: str, cfg, result: Complexity) -> str:
    """The table ``tools/analysis_tools/get_flops.py`` prints: input, then params and FLOPs of model and backbone."""
    height, width = result.input_size
    note = ''
    if result.requested_size and tuple(result.input_size) != tuple(result.requested_size):
        note = f' ({result.requested_size[0]}x{result.requested_size[1]} padded as the data preprocessor pads it)'
    rows = [('model', result.params, result.flops), ('backbone', result.backbone_params, result.backbone_flops)]
    lines = [
        f'config:  {config} ({cfg.default_scope}, {cfg.model.type})',
        f'input:   1x3x{height}x{width}{note}',
        '',
        f'{"":10}{"params":>12}{"FLOPs":>14}',
    ]
    lines += [f'{name:10}{format_count(params):>12}{format_count(flops):>14}' for name, params, flops in rows]
    lines.append('')
    lines.append('FLOPs are multiply-adds of the default path (random weights; padded tokens skip MLP and projection).')
    if result.proposals is not None:
        lines.append(
            f'RoI heads counted for {result.proposals} proposals (test_cfg.rpn.max_per_img), the mask head '
            f'for the first {min(result.proposals, MASK_HEAD_ROIS)}.'
        )
    return '\n'.join(lines)


def print_complexity(config: str, cfg_options: Optional[dict] = None, size: Optional[tuple[int, int]] = None) -> None:
    """Load ``config`` (with ``cfg_options``), count it at ``size`` (default: its test
    size) and print :func:`complexity_report`."""
    from mmengine.logging import print_log

    from mmswin.engine.setup_runner import load_config

    cfg = load_config(config, cfg_options)
    size = size or test_input_size(cfg)
    print_log(f'counting FLOPs of {config} at {size[0]}x{size[1]}', logger='current')
    print(complexity_report(config, cfg, count_complexity(cfg, size)))
