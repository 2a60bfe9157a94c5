"""Parameters and FLOPs of a config's model and of its backbone.

    python tools/get_flops.py configs/mask_rcnn_swin_t.py                 # at the config's test size
    python tools/get_flops.py configs/upernet_swin_t.py --shape 512 2048

FLOPs are multiply-adds, counted by MMEngine's FlopAnalyzer on a randomly initialised
model (the convention of the Swin paper and of MMDetection's / MMSegmentation's
tables). Attention is counted through the backbone's eager path, because the counter
has no rule for ``scaled_dot_product_attention``; both paths do the same arithmetic.
A two-stage detector's RoI heads are counted for ``test_cfg.rpn.max_per_img``
proposals (the mask head for the first 100, as MMDetection's ``_forward`` does), so
the figure does not depend on what an untrained RPN happens to propose.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

from mmswin.engine.preflight import run_tool  # noqa: E402
from mmswin.errors import PreflightError  # noqa: E402

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
    requested_size: tuple[int, int]  # (H, W) asked for
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
        for transform in _test_pipeline(cfg):
            if transform.get('type', '').split('.')[-1] == 'Resize' and transform.get('scale'):
                long_side, short_side = max(transform['scale']), min(transform['scale'])
                return int(short_side), int(long_side)
    raise PreflightError(f'cannot tell the test size of this {cfg.default_scope} config; pass --shape H W')


def _test_pipeline(cfg) -> list:
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


def build_model(cfg):
    """The config's model with random weights (seeded), in eval mode, ready for counting.

    No pretrained file is read; the backbone uses its eager attention so that the
    counter sees the attention matmuls.
    """
    import torch
    from mmengine.registry import DefaultScope

    from mmswin.engine.setup_runner import register_scope

    register_scope(cfg)
    models = importlib.import_module(f'{cfg.default_scope}.registry').MODELS
    model_cfg = copy.deepcopy(cfg.model)  # the caller's config stays as it was
    backbone = model_cfg.get('backbone')
    if backbone is not None:
        backbone.init_cfg = None
        if backbone.get('type', '').endswith('SwinBackbone'):
            backbone.block_impl, backbone.attn_impl = 'reference', 'eager'
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = models.build(model_cfg)
    return model.eval()


def counting_module(model: nn.Module, height: int, width: int) -> nn.Module:
    """The module the counter traces, as ``forward(inputs)``.

    A two-stage detector: what it computes at test time (features, the RPN head, and the
    RoI heads on ``test_cfg.rpn.max_per_img`` fixed boxes; ``num_proposals`` says how
    many). Segmentors and single-stage detectors: ``model._forward(inputs)``, the
    ``mode='tensor'`` path.
    """
    import torch
    from torch import nn

    class TensorForward(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, inputs):
            return self.model._forward(inputs)

    class TwoStageTestForward(nn.Module):
        def __init__(self):
            super().__init__()
            from mmdet.structures import DetDataSample
            from mmengine.structures import InstanceData

            self.model = model
            self.num_proposals = int(model.test_cfg.rpn.max_per_img)
            corners = torch.rand(self.num_proposals, 2, 2, generator=torch.Generator().manual_seed(0))
            corners = corners * torch.tensor([width, height])
            boxes = torch.cat([corners.min(1).values, corners.max(1).values + 1.0], dim=1)  # [P, 4] x1 y1 x2 y2
            self.proposals = [InstanceData(bboxes=boxes)]
            shape = (height, width)
            meta = dict(img_shape=shape, pad_shape=shape, batch_input_shape=shape, scale_factor=(1.0, 1.0))
            self.samples = [DetDataSample(metainfo=meta)]

        def forward(self, inputs):
            features = self.model.extract_feat(inputs)
            return self.model.rpn_head(features), self.model.roi_head.forward(features, self.proposals, self.samples)

    two_stage = hasattr(model, 'roi_head') and getattr(model, 'with_rpn', False)
    return TwoStageTestForward() if two_stage else TensorForward()


def count_complexity(cfg, size: Optional[tuple[int, int]] = None) -> Complexity:
    """Count parameters and FLOPs of ``cfg``'s model at ``size`` (default: its test size)."""
    import torch
    from mmengine.analysis import FlopAnalyzer, parameter_count

    requested = tuple(size) if size else test_input_size(cfg)
    height, width = padded_size(cfg, requested)
    model = build_model(cfg)
    params = parameter_count(model)
    wrapper = counting_module(model, height, width)
    inputs = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        analyzer = FlopAnalyzer(wrapper, (inputs,))
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings('none')
        flops = analyzer.by_module()
    return Complexity(
        params=params[''],
        backbone_params=params['backbone'],
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


def parse_args(argv=None):
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(
        description="Parameters and FLOPs (multiply-adds) of a config's model and "
        'of its backbone, on a randomly initialised model'
    )
    parser.add_argument('config', help='config file, e.g. configs/mask_rcnn_swin_t.py')
    parser.add_argument(
        '--shape',
        nargs=2,
        type=int,
        metavar=('H', 'W'),
        help="input height and width (default: the config's test size: 800x1333 for COCO, the "
        'crop size for segmentation)',
    )
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys: key=value')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.shape and min(args.shape) < 1:
        raise PreflightError(f'--shape needs two positive sizes, got {args.shape[0]} {args.shape[1]}')
    from mmswin.engine.setup_runner import load_config

    cfg = load_config(args.config, args.cfg_options)
    size = tuple(args.shape) if args.shape else test_input_size(cfg)

    from mmengine.logging import print_log

    print_log(
        f'counting FLOPs of {args.config} at {size[0]}x{size[1]} (one traced forward pass: 10-40 s for a '
        'full-size model on a CPU)',
        logger='current',
    )
    result = count_complexity(cfg, size)

    height, width = result.input_size
    note = (
        ''
        if result.input_size == result.requested_size
        else (f' ({result.requested_size[0]}x{result.requested_size[1]} padded as the data preprocessor pads it)')
    )
    rows = [('model', result.params, result.flops), ('backbone', result.backbone_params, result.backbone_flops)]
    lines = [
        f'config:  {args.config} ({cfg.default_scope}, {cfg.model.type})',
        f'input:   1x3x{height}x{width}{note}',
        '',
        f'{"":10}{"params":>12}{"FLOPs":>14}',
    ]
    lines += [f'{name:10}{format_count(params):>12}{format_count(flops):>14}' for name, params, flops in rows]
    lines.append('')
    lines.append('FLOPs are multiply-adds (MMEngine FlopAnalyzer, random weights, attention via the eager path).')
    if result.proposals is not None:
        lines.append(
            f'RoI heads counted for {result.proposals} proposals (test_cfg.rpn.max_per_img), the mask head '
            f'for the first {min(result.proposals, MASK_HEAD_ROIS)}.'
        )
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    run_tool(main)
