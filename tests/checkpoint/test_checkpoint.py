"""mmswin.checkpoint, piece by piece: merging order, resizing, format detection, file errors."""

import pickle
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F

from mmswin.checkpoint import (
    LoadReport,
    convert_state_dict,
    detect_format,
    extract_state_dict,
    position_embedding_to_grid,
    read_checkpoint,
    resize_relative_position_bias_table,
    table_window_size,
    verify_checkpoint_file,
)
from mmswin.checkpoint.formats import unfold_to_official_norm, unfold_to_official_reduction
from mmswin.errors import CheckpointFormatError
from mmswin.models.layers.patch import PatchMerging


def test_unfold_merging_weights_give_the_same_merge_in_official_order():
    """nn.Unfold (OpenMMLab) concatenates each 2x2 neighbourhood channel-major; the
    converted weights must make mmswin's PatchMerging compute the same thing."""
    channels = 5
    x = torch.randn(2, 6, 8, channels)
    norm = torch.nn.LayerNorm(4 * channels)
    reduction = torch.nn.Linear(4 * channels, 2 * channels, bias=False)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
        unfolded = F.unfold(x.permute(0, 3, 1, 2), kernel_size=2, stride=2).transpose(1, 2)  # [B, L, 4C]
        expected = reduction(norm(unfolded)).view(2, 3, 4, 2 * channels)
        merging = PatchMerging(channels)
        merging.norm.weight.copy_(unfold_to_official_norm(norm.weight))
        merging.norm.bias.copy_(unfold_to_official_norm(norm.bias))
        merging.reduction.weight.copy_(unfold_to_official_reduction(reduction.weight))
        assert torch.allclose(merging(x), expected, atol=1e-5)


def test_table_resize_keeps_the_zero_offset_and_the_axes():
    table = torch.randn(13 * 13, 3)
    resized = resize_relative_position_bias_table(table, 12)
    assert resized.shape == (23 * 23, 3)
    # Offset (0, 0) sits at the centre of both grids and lands on a source sample exactly.
    assert torch.allclose(resized[11 * 23 + 11], table[6 * 13 + 6], atol=1e-6)
    # A bias that depends on dy only (rows of the offset grid) still depends on dy only.
    by_row = torch.arange(13.0).repeat_interleave(13)[:, None].expand(-1, 2)
    grid = resize_relative_position_bias_table(by_row, 12).view(23, 23, 2)
    assert torch.allclose(grid, grid[:, :1].expand(-1, 23, -1), atol=1e-5)
    assert not torch.allclose(grid[0], grid[-1])
    assert resize_relative_position_bias_table(table, 7) is table
    assert table_window_size(resized) == 12


def test_table_resize_rejects_a_table_that_is_not_square():
    with pytest.raises(ValueError, match='square window'):
        resize_relative_position_bias_table(torch.randn(10, 2), 7)


def test_position_embedding_tokens_are_row_major():
    tokens = torch.randn(1, 12, 4)  # 3x4 grid, 4 channels
    grid = position_embedding_to_grid(tokens, (3, 4))
    assert grid.shape == (1, 4, 3, 4)
    for h in range(3):
        for w in range(4):
            assert torch.equal(grid[0, :, h, w], tokens[0, h * 4 + w])
    assert position_embedding_to_grid(torch.zeros(1, 16, 8)).shape == (1, 8, 4, 4)
    with pytest.raises(ValueError, match='not square'):
        position_embedding_to_grid(torch.zeros(1, 6, 4))


def _keys(*names):
    return OrderedDict((name, torch.zeros(1)) for name in names)


@pytest.mark.parametrize(
    'keys, expected',
    [
        (['stages.0.blocks.0.attn.qkv.weight', 'patch_embed.proj.weight'], 'mmswin'),
        (['stages.0.blocks.0.attn.w_msa.qkv.weight', 'patch_embed.projection.weight'], 'openmmlab'),
        (['layers.0.blocks.0.attn.qkv.weight', 'layers.0.downsample.reduction.weight', 'head.weight'], 'official'),
        (
            [
                'layers.0.blocks.0.attn.qkv.weight',
                'layers.1.downsample.reduction.weight',
                'layers.1.blocks.0.attn.qkv.weight',
                'head.fc.weight',
            ],
            'timm',
        ),
        (
            ['layers_0.blocks.0.attn.qkv.weight', 'layers_1.downsample.norm.weight', 'layers_1.blocks.0.norm1.weight'],
            'timm',
        ),
        (['features.0.0.weight', 'features.1.0.attn.qkv.weight', 'features.2.reduction.weight'], 'torchvision'),
    ],
)
def test_format_is_detected_from_the_keys(keys, expected):
    assert detect_format(keys) == expected


def test_official_and_timm_told_apart_by_merging_width_when_truncated():
    """Stages 1-2 only: neither ``layers.0.downsample`` nor the last stage settles it."""
    keys = [
        'layers.1.blocks.0.attn.qkv.weight',
        'layers.1.downsample.reduction.weight',
        'layers.2.blocks.0.attn.qkv.weight',
    ]
    official = {'layers.1.downsample.reduction.weight': (128, 256), 'layers.1.blocks.0.attn.qkv.weight': (192, 64)}
    timm = {'layers.1.downsample.reduction.weight': (64, 128), 'layers.1.blocks.0.attn.qkv.weight': (192, 64)}
    assert detect_format(keys, official) == 'official'
    assert detect_format(keys, timm) == 'timm'


def test_swin_v2_and_mixed_layouts_are_refused():
    with pytest.raises(CheckpointFormatError, match='Swin Transformer V2'):
        detect_format(['layers.0.blocks.0.attn.logit_scale', 'layers.0.blocks.0.attn.cpb_mlp.0.weight'])
    with pytest.raises(CheckpointFormatError, match='mixes'):
        detect_format(['layers.0.blocks.0.attn.qkv.weight', 'stages.0.blocks.0.attn.w_msa.qkv.weight'])


def test_wrappers_and_prefixes_are_unwrapped():
    inner = _keys('module.backbone.patch_embed.proj.weight', 'module.neck.conv.weight')
    tensors, outside = extract_state_dict(dict(meta=dict(epoch=3), state_dict=inner))
    assert list(tensors) == ['patch_embed.proj.weight'] and outside == 1
    tensors, _ = extract_state_dict(_keys('module._orig_mod.stages.0.blocks.0.attn.qkv.weight'))
    assert list(tensors) == ['stages.0.blocks.0.attn.qkv.weight'], 'DDP and torch.compile prefixes'
    tensors, _ = extract_state_dict(dict(model=_keys('layers.0.blocks.0.norm1.weight')))
    assert list(tensors) == ['layers.0.blocks.0.norm1.weight']
    tensors, outside = extract_state_dict(_keys('encoder.a', 'decoder.b'), prefix='encoder.')
    assert list(tensors) == ['a'] and outside == 1
    with pytest.raises(CheckpointFormatError, match=r"prefix 'backbone.'.*'encoder.'"):
        extract_state_dict(_keys('encoder.a'), prefix='backbone.')
    with pytest.raises(CheckpointFormatError, match='holds no tensors'):
        extract_state_dict(dict(epoch=1, config='x'))
    with pytest.raises(CheckpointFormatError, match='got list'):
        extract_state_dict([torch.zeros(1)])


def test_conversion_drops_heads_and_buffers_and_maps_the_final_norm():
    state = _keys(
        'layers.0.blocks.0.attn.qkv.weight',
        'layers.0.blocks.0.attn.relative_position_index',
        'layers.0.blocks.1.attn_mask',
        'layers.1.blocks.0.norm1.weight',
        'norm.weight',
        'head.weight',
        'head.bias',
    )
    converted = convert_state_dict(dict(model=state))
    assert list(converted.state_dict) == [
        'stages.0.blocks.0.attn.qkv.weight',
        'stages.1.blocks.0.norm1.weight',
        'norm1.weight',
    ]
    assert converted.ignored == {'classification head': 2, 'recomputed buffers': 2}
    assert converted.source_keys['norm1.weight'] == 'norm.weight'
    assert converted.description == 'official Swin (classification)'


def test_timm_merging_moves_to_the_end_of_the_previous_stage():
    state = _keys(
        'layers.0.blocks.0.norm1.weight',
        'layers.1.downsample.reduction.weight',
        'layers.1.downsample.norm.weight',
        'layers.1.blocks.0.norm1.weight',
        'head.fc.weight',
    )
    converted = convert_state_dict(state)
    assert converted.format == 'timm'
    assert 'stages.0.downsample.reduction.weight' in converted.state_dict
    assert 'stages.0.downsample.norm.weight' in converted.state_dict


def test_torchvision_keys_map_to_stages():
    state = _keys(
        'features.0.0.weight',
        'features.0.2.bias',
        'features.1.0.mlp.0.weight',
        'features.1.1.mlp.3.bias',
        'features.2.reduction.weight',
        'features.3.0.attn.qkv.weight',
        'norm.weight',
        'head.weight',
    )
    converted = convert_state_dict(state)
    assert list(converted.state_dict) == [
        'patch_embed.proj.weight',
        'patch_embed.norm.bias',
        'stages.0.blocks.0.mlp.fc1.weight',
        'stages.0.blocks.1.mlp.fc2.bias',
        'stages.0.downsample.reduction.weight',
        'stages.1.blocks.0.attn.qkv.weight',
        'norm1.weight',
    ]


def test_load_report_is_one_line():
    report = LoadReport(
        source='timm',
        loaded=119,
        expected=125,
        resized=[('stages.0.blocks.0.attn.relative_position_bias_table', (169, 3), (529, 3))],
        left_at_init=['norm0.weight', 'norm0.bias'],
    )
    report.ignored['classification head'] = 2
    summary = report.summary()
    assert '\n' not in summary
    assert summary == (
        'SwinBackbone: loaded 119/125 tensors (format: timm); resized 1 relative position bias '
        'tables (bicubic, window 7 -> 12); left at init (not in the checkpoint): norm0; ignored by '
        'design: classification head (2)'
    )


# --- files ---------------------------------------------------------------------------------------


@pytest.fixture
def saved_checkpoint(tmp_path):
    path = tmp_path / 'swin.pth'
    torch.save(dict(state_dict=_keys('stages.0.blocks.0.attn.qkv.weight')), path)
    return path


def test_read_checkpoint_loads_a_weights_file(saved_checkpoint):
    assert list(read_checkpoint(str(saved_checkpoint))['state_dict']) == ['stages.0.blocks.0.attn.qkv.weight']


def test_truncated_file_is_named_truncated(saved_checkpoint, tmp_path):
    data = saved_checkpoint.read_bytes()
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointFormatError, match='is truncated'):
        read_checkpoint(str(truncated))
    # The same check without loading, for pre-flight checks of config paths.
    with pytest.raises(CheckpointFormatError, match='is truncated'):
        verify_checkpoint_file(str(truncated))
    verify_checkpoint_file(str(saved_checkpoint))


def test_legacy_format_truncated_file_gives_a_clear_error(tmp_path):
    path = tmp_path / 'legacy.pth'
    torch.save(_keys('a', 'b'), path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointFormatError, match='damaged or truncated'):
        read_checkpoint(str(path))


def test_non_checkpoint_files_give_clear_errors(tmp_path):
    html = tmp_path / 'download.pth'
    html.write_text('<!DOCTYPE html><html><body>rate limited</body></html>')
    with pytest.raises(CheckpointFormatError, match="not a PyTorch checkpoint: it is text starting with b'<!DOCTYPE"):
        read_checkpoint(str(html))
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(CheckpointFormatError, match='is empty'):
        read_checkpoint(str(empty))
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        read_checkpoint(str(tmp_path / 'missing.pth'))


class _Opaque:
    pass


def test_pickled_objects_are_refused_by_the_safe_loader_unless_trusted(tmp_path):
    path = tmp_path / 'objects.pth'
    torch.save(dict(state_dict=_keys('a'), extra=_Opaque()), path)
    with pytest.raises(CheckpointFormatError, match='--trust-file'):
        read_checkpoint(str(path))
    assert isinstance(read_checkpoint(str(path), trusted=True)['extra'], _Opaque)


def test_a_pickle_of_something_else_is_not_a_state_dict(tmp_path):
    path = tmp_path / 'list.pth'
    with open(path, 'wb') as file:
        pickle.dump([1, 2, 3], file, protocol=2)
    with pytest.raises(CheckpointFormatError):
        convert_state_dict(read_checkpoint(str(path)))
