"""``pretrain_img_size`` and ``pretrained`` are checked like every other SwinBackbone argument:
one ValueError / TypeError naming the argument and the fix, before any module is built."""

import inspect
import re

import pytest

from mmswin.models import SwinBackbone, SwinV2Backbone
from mmswin.models.backbones import swin


@pytest.fixture
def nothing_built(monkeypatch):
    """Fail the test if the backbone starts building modules."""

    def refuse(*args, **kwargs):
        raise AssertionError('PatchEmbed was built before the arguments were checked')

    monkeypatch.setattr(swin, 'PatchEmbed', refuse)


@pytest.mark.parametrize(
    ('kwargs', 'error', 'words'),
    [
        (dict(pretrain_img_size=(224, 224, 224)), ValueError, 'pretrain_img_size must be an int or a (height, width)'),
        (dict(pretrain_img_size=(224, 224, 224), use_abs_pos_embed=True), ValueError, 'got (224, 224, 224)'),
        (dict(pretrain_img_size=0), ValueError, 'pretrain_img_size is the image size'),
        (dict(pretrain_img_size=0, use_abs_pos_embed=True), ValueError, '>= patch_size (4); got 0'),
        (dict(pretrain_img_size=(224, 2)), ValueError, '>= patch_size (4); got (224, 2)'),
        (dict(pretrain_img_size=224.0), ValueError, 'pretrain_img_size must be an int'),
        (dict(pretrain_img_size=True), ValueError, 'pretrain_img_size must be an int'),
        (dict(pretrained=123), TypeError, 'pretrained must be a checkpoint path (str) or None, got int 123'),
        (dict(pretrained='a.pth', init_cfg=dict(type='Pretrained', checkpoint='b.pth')), ValueError, 'keep one'),
    ],
)
def test_bad_size_or_pretrained_is_named_before_any_work(nothing_built, kwargs, error, words):
    with pytest.raises(error) as info:
        SwinBackbone(arch='tiny', **kwargs)
    assert words in str(info.value)


def test_a_one_tuple_is_a_square_size():
    backbone = SwinBackbone(arch=dict(embed_dims=8, depths=(1,), num_heads=(1,)), out_indices=(0,),
                            pretrain_img_size=(224,), use_abs_pos_embed=True)  # fmt: skip
    assert tuple(backbone.absolute_pos_embed.shape) == (1, 8, 56, 56)


def test_a_pair_keeps_height_and_width():
    backbone = SwinBackbone(arch=dict(embed_dims=8, depths=(1,), num_heads=(1,)), out_indices=(0,),
                            pretrain_img_size=[384, 224], use_abs_pos_embed=True)  # fmt: skip
    assert tuple(backbone.absolute_pos_embed.shape) == (1, 8, 96, 56)


def test_pretrained_path_becomes_the_init_cfg():
    backbone = SwinBackbone(arch=dict(embed_dims=8, depths=(1,), num_heads=(1,)), out_indices=(0,), pretrained='a.pth')
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint='a.pth')


def test_v2_checks_the_size_the_same_way():
    with pytest.raises(ValueError, match='pretrain_img_size must be an int or a'):
        SwinV2Backbone(arch='tiny', pretrain_img_size=(256, 256, 256))


# The arguments each backbone takes: its own, and the common ones it passes on to SwinBackboneBase.
COMMON = {
    'in_channels', 'patch_size', 'mlp_ratio', 'patch_norm', 'drop_rate', 'attn_drop_rate', 'drop_path_rate',
    'use_abs_pos_embed', 'out_indices', 'frozen_stages', 'with_cp', 'mask_padding', 'attn_impl', 'init_cfg',
    'pretrained',
}  # fmt: skip
OWN = {
    SwinBackbone: {'arch', 'pretrain_img_size', 'window_size', 'qkv_bias', 'qk_scale', 'block_impl'},
    SwinV2Backbone: {'arch', 'window_size', 'pretrained_window_sizes', 'pretrain_img_size'},
}


@pytest.mark.parametrize('backbone_class', [SwinBackbone, SwinV2Backbone])
def test_argument_names_are_the_class_own_and_the_common_ones(backbone_class):
    assert backbone_class.argument_names() == OWN[backbone_class] | COMMON
    assert swin.SwinBackboneBase.argument_names() == COMMON | {'arch', 'pretrain_img_size'}


@pytest.mark.parametrize('backbone_class', [SwinBackbone, SwinV2Backbone])
def test_help_documents_every_argument_once(backbone_class):
    documented = re.findall(r'^    (\w+): ', inspect.getdoc(backbone_class), flags=re.MULTILINE)
    assert sorted(documented) == sorted(backbone_class.argument_names())


@pytest.mark.parametrize(
    ('backbone_class', 'name', 'closest'),
    [
        (SwinBackbone, 'mask_paddin', 'mask_padding'),
        (SwinBackbone, 'qkvbias', 'qkv_bias'),
        (SwinV2Backbone, 'drop_pth_rate', 'drop_path_rate'),
        (SwinV2Backbone, 'pretrained_window_size', 'pretrained_window_sizes'),
    ],
)
def test_a_misspelt_argument_gets_the_closest_known_name(backbone_class, name, closest):
    from mmswin.engine.config_checks import check_backbone_arguments
    from mmswin.errors import PreflightError

    with pytest.raises(PreflightError) as info:
        check_backbone_arguments({'type': f'mmswin.{backbone_class.__name__}', name: 1})
    assert f"unknown {backbone_class.__name__} argument '{name}'; did you mean '{closest}'?" in str(info.value)


def test_only_the_leading_arguments_are_positional():
    # The old positional order went on with in_channels: a third (fifth) value must fail, not
    # land in another argument.
    with pytest.raises(TypeError, match='positional'):
        SwinBackbone('tiny', 224, 3)
    with pytest.raises(TypeError, match='positional'):
        SwinV2Backbone('tiny', 8, 0, 256, 3)


@pytest.mark.parametrize(
    ('backbone_class', 'kwargs', 'error', 'words'),
    [
        (SwinBackbone, dict(window_size=0), ValueError, 'window_size must be an int >= 1, got 0'),
        (SwinBackbone, dict(block_impl='fast'), ValueError, 'block_impl'),
        (SwinBackbone, dict(attn_impl='flash'), ValueError, 'attn_impl'),
        (SwinBackbone, dict(mlp_ratio=0), ValueError, 'mlp_ratio must be > 0'),
        (SwinV2Backbone, dict(window_size=(8, 8, 8)), ValueError, 'window_size must be'),
        (SwinV2Backbone, dict(pretrained_window_sizes=-1), ValueError, 'pretrained_window_sizes'),
        (SwinV2Backbone, dict(attn_impl='flash'), ValueError, 'attn_impl'),
        (SwinV2Backbone, dict(pretrained=123), TypeError, 'pretrained must be a checkpoint path'),
        (SwinV2Backbone, dict(frozen_stages=5), ValueError, 'frozen_stages'),
    ],
)
def test_own_and_common_arguments_are_checked_before_any_work(nothing_built, backbone_class, kwargs, error, words):
    with pytest.raises(error) as info:
        backbone_class(arch='tiny', **kwargs)
    assert words in str(info.value)
