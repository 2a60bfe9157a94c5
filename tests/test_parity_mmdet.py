"""The backbone's proof of correctness: same weights, same stage outputs as MMDetection's
SwinTransformer (the official detection backbone), at sizes that are multiples of
neither 32 nor 7. Official-layout weights go through mmdet's own ``swin_converter``."""

import pytest
import torch

from mmswin.models import SwinBackbone

from .helpers import perturb_, to_official_layout

SIZES = [(1, 97, 131), (2, 224, 224), (1, 333, 501), (1, 800, 1333)]
ARCH_KWARGS = {
    'tiny': dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    'small': dict(embed_dims=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
}
_models = {}


def build_pair(arch):
    """An mmswin and an mmdet backbone of one preset holding the same random weights."""
    if arch not in _models:
        from mmdet.models.backbones.swin import SwinTransformer, swin_converter

        ours = perturb_(SwinBackbone(arch=arch, drop_path_rate=0.0)).eval()
        theirs = SwinTransformer(**ARCH_KWARGS[arch], drop_path_rate=0.0)
        converted = swin_converter(to_official_layout(ours.state_dict()))
        # swin_converter returns detector-level keys ('backbone.' prefix).
        converted = {key[len('backbone.') :]: value for key, value in converted.items()}
        missing, unexpected = theirs.load_state_dict(converted, strict=False)
        assert unexpected == []
        assert all(key.endswith('relative_position_index') for key in missing), missing
        theirs.eval()
        _models[arch] = ours, theirs
    return _models[arch]


@pytest.mark.parametrize('arch', ['tiny', 'small'])
@pytest.mark.parametrize('size', SIZES, ids=lambda s: 'x'.join(map(str, s)))
def test_stage_outputs_match_mmdet(arch, size):
    ours, theirs = build_pair(arch)
    x = torch.randn(size[0], 3, size[1], size[2])
    with torch.no_grad():
        expected = theirs(x)
        actual = ours(x)
    assert len(actual) == len(expected) == 4
    for a, b in zip(actual, expected):
        assert a.shape == b.shape
        assert (a - b).abs().max().item() < 1e-4
