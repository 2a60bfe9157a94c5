"""Patch embedding and patch merging."""

import pytest
import torch

from mmswin.models.layers.patch import PatchEmbed, PatchMerging, concat_2x2, pad_to_multiple


def test_patch_embed_pads_to_patch_size():
    embed = PatchEmbed(3, 8, patch_size=4)
    assert embed(torch.randn(2, 3, 9, 13)).shape == (2, 3, 4, 8)


def test_pad_to_multiple_returns_input_when_aligned():
    x = torch.randn(1, 8, 8, 3)
    assert pad_to_multiple(x, 4, channels_last=True) is x


def test_patch_merging_uses_official_concat_order():
    merge = PatchMerging(2)
    with torch.no_grad():
        merge.norm.weight.fill_(1.0)
        merge.norm.bias.zero_()
    x = torch.randn(1, 4, 6, 2)
    grouped = merge.norm(torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1))
    assert torch.allclose(merge(x), merge.reduction(grouped), atol=1e-6)


def test_patch_merging_pads_odd_sizes():
    merge = PatchMerging(4)
    assert merge(torch.randn(2, 5, 7, 4)).shape == (2, 3, 4, 8)


@pytest.mark.parametrize('height, width', [(7, 10), (8, 9), (1, 1)])
def test_concat_2x2_with_the_merged_size_given_is_the_same(height, width):
    x = torch.randn(2, height, width, 3)
    out_size = (-(-height // 2), -(-width // 2))
    assert torch.equal(concat_2x2(x, out_size), concat_2x2(x))
