"""``pretrain_img_size`` and ``pretrained`` are checked like every other SwinBackbone argument:
one ValueError / TypeError naming the argument and the fix, before any module is built."""

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
