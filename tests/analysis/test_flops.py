"""The one FLOP counter counts the work the default path does, by MMEngine's rules."""

import pytest
import torch
from mmengine.analysis import FlopAnalyzer
from torch import nn

from mmswin.analysis.complexity import count_complexity
from mmswin.analysis.flops import count_flops
from mmswin.engine.setup_runner import load_config
from mmswin.models import SwinBackbone
from mmswin.models.backbones.swin import ARCH_ZOO

from ..tools_runner import config


def mmdet_swin_t() -> nn.Module:
    from mmdet.models.backbones.swin import SwinTransformer

    model = SwinTransformer(**ARCH_ZOO['tiny'])
    model.eval()  # (MMDetection's train() returns None: no chaining)
    return model


def flop_analyzer_total(model: nn.Module, x: torch.Tensor) -> int:
    analyzer = FlopAnalyzer(model, (x,))
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings('none')
    return int(analyzer.total())


class DenseHeadOps(nn.Module):
    """The dense heads' counted ops: convolution, batch / group norm, upsampling, pooling."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.gn = nn.GroupNorm(2, 8)
        self.pool = nn.AdaptiveAvgPool2d(3)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = self.gn(self.bn(self.conv(x)))
        x = nn.functional.interpolate(x, scale_factor=2, mode='nearest')
        x = nn.functional.interpolate(x, size=(20, 30), mode='bilinear', align_corners=False)
        return self.fc(self.pool(x).flatten(2).transpose(1, 2))


@pytest.mark.parametrize(
    'make_model, shape',
    [(mmdet_swin_t, (1, 3, 224, 224)), (lambda: DenseHeadOps().eval(), (1, 3, 12, 18))],
    ids=['mmdet_swin', 'dense_head_ops'],
)
def test_counter_follows_mmengine_flop_analyzer(make_model, shape):
    model, x = make_model(), torch.randn(*shape)
    assert count_flops(model, x)[''] == flop_analyzer_total(model, x)


def test_backbone_equals_mmdet_where_no_token_is_padded():
    x = torch.randn(1, 3, 224, 448)  # stage grids 56x112 ... 7x14: multiples of the window
    ours = SwinBackbone(arch='tiny').eval()
    assert count_flops(ours, x)[''] == count_flops(mmdet_swin_t(), x)['']


def test_padded_tokens_get_no_projection_and_no_mlp():
    """At 800x1344 the grids 200x336, 100x168, 50x84, 25x42 are padded to multiples of 7.
    MMDetection projects the padded tokens of every block; ours does not (and neither
    runs their MLP), so ours is short by exactly those projections."""
    x = torch.zeros(1, 3, 800, 1344)
    ours = count_flops(SwinBackbone(arch='tiny').eval(), x)['']
    theirs = count_flops(mmdet_swin_t(), x)['']
    projections = 0
    for stage, (depth, (height, width)) in enumerate(
        zip(ARCH_ZOO['tiny']['depths'], ((200, 336), (100, 168), (50, 84), (25, 42)))
    ):
        padded_tokens = -(-height // 7) * 7 * -(-width // 7) * 7 - height * width
        channels = 96 * 2**stage
        projections += depth * padded_tokens * channels * channels
    assert theirs - ours == projections


@pytest.mark.parametrize(
    'path, size, published',
    [('mask_rcnn_swin_t.py', (800, 1280), 267e9), ('upernet_swin_t.py', (512, 2048), 945e9)],
)
def test_model_flops_match_the_published_figures(path, size, published):
    """Swin paper, Table 2 / Table 3 (MMDetection and MMSegmentation report the same)."""
    result = count_complexity(load_config(config(path)), size)
    assert result.input_size == size
    assert abs(result.flops - published) / published < 0.01, result.flops / 1e9
