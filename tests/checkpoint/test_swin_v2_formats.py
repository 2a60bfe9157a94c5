"""Swin V2 weights, end to end: one model's weights written in every public V2 key layout
load into SwinV2Backbone through the user-facing paths and give bit-identical outputs.

The layouts are written here by renaming the model's keys, independently of
:mod:`mmswin.checkpoint`: official SwinV2 classification (``layers.i``, persistent buffers,
final ``norm``, ``head``), timm old (the official layout) and new (merging at the start of
the next stage, ``head.fc``), torchvision ``swin_v2_*`` (``features.k``, one qkv bias with
an unused k part), MMPretrain's ``SwinTransformerV2`` (``attn.w_msa``, ``ffn.layers``,
merging at the start of the next stage with its reduction in nn.Unfold order).
"""

import importlib.util
import os
import re
from collections import OrderedDict

import pytest
import torch
from torch import nn

from mmswin.checkpoint import convert_state_dict
from mmswin.checkpoint import loading as loading_module
from mmswin.errors import CheckpointFormatError, CheckpointMismatchError
from mmswin.models import SwinBackbone, SwinV2Backbone

from ..helpers import randomize_

MINI = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))
WINDOW = 5
SIZE = (1, 3, 61, 75)  # padded in every stage at window 5; stage 3 is a small map
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def mini(**kwargs) -> SwinV2Backbone:
    return SwinV2Backbone(arch=MINI, **{'window_size': WINDOW, 'drop_path_rate': 0.0, **kwargs})


def outputs(model: nn.Module, seed: int = 7) -> list:
    x = torch.randn(SIZE, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return [out.clone() for out in model.eval()(x)]


# --- the V2 layouts, by renaming mmswin keys ----------------------------------------------------


def _buffers(prefix: str, window: int = 8):
    """What the official / torchvision / MMPretrain modules save beside the weights (the
    content is never used, only dropped)."""
    return {
        prefix + 'relative_coords_table': torch.randn(1, 2 * window - 1, 2 * window - 1, 2),
        prefix + 'relative_position_index': torch.zeros(window**2, window**2, dtype=torch.long),
    }


def official_layout(own: dict) -> OrderedDict:
    out = OrderedDict()
    for key, value in own.items():
        if re.match(r'norm[012]\.', key):
            continue
        key = re.sub(r'^stages\.', 'layers.', key)
        key = re.sub(r'^norm3\.', 'norm.', key)
        out[key] = value
        block = re.match(r'(layers\.\d+\.blocks\.(\d+))\.attn\.logit_scale$', key)
        if block:
            out.update(_buffers(block.group(1) + '.attn.'))
            if int(block.group(2)) % 2:
                out[block.group(1) + '.attn_mask'] = torch.zeros(4, 64, 64)
    out['head.weight'] = torch.randn(10, 128)
    out['head.bias'] = torch.randn(10)
    return out


def timm_new_layout(own: dict) -> OrderedDict:
    out = OrderedDict()
    for key, value in official_layout(own).items():
        if key.endswith(('relative_coords_table', 'relative_position_index', 'attn_mask')):
            continue  # non-persistent in timm >= 0.9
        key = re.sub(r'^layers\.(\d+)\.downsample\.', lambda m: f'layers.{int(m.group(1)) + 1}.downsample.', key)
        out[re.sub(r'^head\.', 'head.fc.', key)] = value
    return out


def torchvision_layout(own: dict) -> OrderedDict:
    out = OrderedDict()
    for key, value in own.items():
        if re.match(r'norm[012]\.', key):
            continue
        if key.endswith('attn.v_bias'):
            continue  # folded into qkv.bias below
        key = key.replace('patch_embed.proj.', 'features.0.0.').replace('patch_embed.norm.', 'features.0.2.')
        key = re.sub(r'^stages\.(\d+)\.blocks\.', lambda m: f'features.{2 * int(m.group(1)) + 1}.', key)
        key = re.sub(r'^stages\.(\d+)\.downsample\.', lambda m: f'features.{2 * int(m.group(1)) + 2}.', key)
        key = key.replace('.mlp.fc1.', '.mlp.0.').replace('.mlp.fc2.', '.mlp.3.')
        key = re.sub(r'^norm3\.', 'norm.', key)
        if key.endswith('attn.q_bias'):
            q_bias, v_bias = value, own[re.sub(r'q_bias$', 'v_bias', _own_key(own, value))]
            # torchvision zeroes the k part on every call: any stored value must be ignored.
            out[key.replace('q_bias', 'qkv.bias')] = torch.cat([q_bias, torch.full_like(q_bias, 7.0), v_bias])
            out.update(_buffers(key.replace('q_bias', '')))
            continue
        out[key] = value
    out['head.weight'] = torch.randn(10, 128)
    out['head.bias'] = torch.randn(10)
    return out


def _own_key(own: dict, value) -> str:
    return next(key for key, tensor in own.items() if tensor is value)


def official_to_unfold(weight: torch.Tensor) -> torch.Tensor:
    """Reduction weight [out, 4C]: official (dx, dy, c) input order -> nn.Unfold's (c, dy, dx)."""
    out_channels, in_channels = weight.shape
    return weight.view(out_channels, 2, 2, in_channels // 4).permute(0, 3, 2, 1).reshape(out_channels, in_channels)


def mmpretrain_layout(own: dict) -> dict:
    state = OrderedDict()
    for key, value in own.items():
        if re.match(r'norm[012]\.', key):
            continue
        if key.endswith('downsample.reduction.weight'):
            value = official_to_unfold(value)
        key = re.sub(r'^stages\.(\d+)\.downsample\.', lambda m: f'stages.{int(m.group(1)) + 1}.downsample.', key)
        key = key.replace('patch_embed.proj.', 'patch_embed.projection.')
        key = key.replace('.attn.', '.attn.w_msa.')
        key = key.replace('.mlp.fc1.', '.ffn.layers.0.0.').replace('.mlp.fc2.', '.ffn.layers.1.')
        state['backbone.' + key] = value
        if key.endswith('attn.w_msa.logit_scale'):
            state.update(_buffers('backbone.' + key.replace('logit_scale', '')))
    state['head.fc.weight'] = torch.randn(10, 128)
    state['head.fc.bias'] = torch.randn(10)
    return dict(meta=dict(mmpretrain_version='1.2.0'), state_dict=state)


def detector_checkpoint(backbone_state: dict) -> dict:
    state = OrderedDict(('backbone.' + key, value) for key, value in backbone_state.items())
    state['neck.weight'] = torch.ones(8, 128, 1, 1)
    return dict(meta=dict(epoch=12), state_dict=state)


FORMATS = {
    # name: (payload builder, report source, classification: carries only the last output norm)
    'mmswin': (lambda own: own, 'mmswin (V2)', False),
    'mmswin_detector': (detector_checkpoint, 'mmswin (V2)', False),
    'official': (lambda own: dict(model=official_layout(own)), 'official Swin (V2, classification)', True),
    'timm_old': (lambda own: official_layout(own), 'official Swin (V2, classification)', True),
    'timm_new': (timm_new_layout, 'timm (V2)', True),
    'torchvision': (torchvision_layout, 'torchvision (V2)', True),
    'mmpretrain': (mmpretrain_layout, 'MMPretrain (V2)', True),
}


@pytest.fixture(scope='module')
def source():
    torch.manual_seed(0)
    reference = randomize_(mini(), seed=1)
    with torch.no_grad():  # classification formats carry only the last output norm
        for i in range(3):
            getattr(reference, f'norm{i}').weight.fill_(1.0)
            getattr(reference, f'norm{i}').bias.zero_()
    own = reference.state_dict()
    return dict(reference=reference, outputs=outputs(reference), own=own)


def load_via(path: str, payload: dict, tmp_path, **kwargs) -> SwinV2Backbone:
    file = tmp_path / 'weights.pth'
    torch.save(payload, file)
    if path == 'load_state_dict':
        model = mini(**kwargs)
        model.load_state_dict(torch.load(file), strict=False)  # weights_only=True
    elif path == 'init_cfg':
        model = mini(init_cfg=dict(type='Pretrained', checkpoint=str(file)), **kwargs)
        model.init_weights()
    else:
        raise ValueError(path)
    return model.eval()


@pytest.mark.parametrize('path', ['load_state_dict', 'init_cfg'])
@pytest.mark.parametrize('fmt', list(FORMATS))
def test_every_v2_format_loads_with_identical_outputs(source, fmt, path, tmp_path, monkeypatch):
    logged = []
    monkeypatch.setattr(loading_module, 'print_log', lambda message, **kwargs: logged.append(message))
    build, description, classification = FORMATS[fmt]
    model = load_via(path, build(source['own']), tmp_path)
    for actual, expected in zip(outputs(model), source['outputs']):
        assert torch.equal(actual, expected), 'the same weights in any format give identical outputs'
    report = model.checkpoint_report
    assert report.source == description
    assert len(logged) == 1 and logged[0] == report.summary(), 'one report line per load'
    assert report.summary().startswith('SwinV2Backbone: loaded')
    assert 'pretrained_window_sizes=(0, 0, 0, 0)' in report.summary()
    expected_loaded = len(source['own']) - (6 if classification else 0)
    assert report.loaded == expected_loaded and report.resized == [] and report.notes == []


def test_recomputed_buffers_and_the_head_are_dropped_by_design(source, tmp_path):
    model = load_via('load_state_dict', FORMATS['official'][0](source['own']), tmp_path)
    ignored = model.checkpoint_report.ignored
    assert ignored['recomputed buffers'] == 8 * 2 + 4  # coords table and index per block, masks
    assert ignored['classification head'] == 2


def test_load_from_a_whole_detector_checkpoint(source, tmp_path):
    """What Runner.load_checkpoint does for `load_from` and `--resume`."""
    from mmengine.runner.checkpoint import load_checkpoint

    class Detector(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = mini()
            self.neck = nn.Conv2d(128, 8, 1, bias=False)

    file = tmp_path / 'detector.pth'
    torch.save(mmpretrain_layout(source['own']), file)
    detector = Detector()
    load_checkpoint(detector, str(file), map_location='cpu', strict=False)
    assert detector.backbone.checkpoint_report.source == 'MMPretrain (V2)'
    for actual, expected in zip(outputs(detector.backbone), source['outputs']):
        assert torch.equal(actual, expected)


def test_a_window_other_than_the_checkpoints_loads_without_resizing(source, tmp_path):
    """Continuous bias: window-5 weights into windows of 7 with pretrained_window_sizes 5."""
    model = load_via(
        'init_cfg', FORMATS['official'][0](source['own']), tmp_path, window_size=7, pretrained_window_sizes=5
    )
    report = model.checkpoint_report
    assert report.resized == [] and report.notes == []
    assert 'window_size=(7, 7, 7, 7), pretrained_window_sizes=(5, 5, 5, 5)' in report.summary()
    assert all(out.isfinite().all() for out in outputs(model))


def test_v1_weights_into_v2_and_v2_into_v1_say_which_version(source):
    v1 = SwinBackbone(arch=MINI)
    with pytest.raises(CheckpointFormatError, match=r'Swin Transformer V1 checkpoint.*mmswin.SwinBackbone'):
        mini().load_state_dict(v1.state_dict())
    with pytest.raises(CheckpointFormatError, match=r'Swin Transformer V2 checkpoint.*mmswin.SwinV2Backbone'):
        v1.load_state_dict(dict(model=official_layout(source['own'])), strict=False)


def test_wrong_architecture_names_the_first_tensor_and_both_shapes(source):
    wider = SwinV2Backbone(arch=dict(embed_dims=24, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4)))
    model = mini()
    before = model.patch_embed.proj.weight.clone()
    with pytest.raises(
        CheckpointMismatchError,
        match=r"SwinV2Backbone cannot load .*'patch_embed.proj.weight' has shape \(24, 3, 4, 4\) in the "
        r'checkpoint but \(16, 3, 4, 4\) in the model',
    ):
        model.load_state_dict(dict(model=official_layout(wider.state_dict())), strict=False)
    assert torch.equal(model.patch_embed.proj.weight, before), 'nothing is copied before the check'
    more_heads = SwinV2Backbone(arch=dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(2, 2, 2, 4)))
    with pytest.raises(
        CheckpointMismatchError,
        match=r"'stages.0.blocks.0.attn.logit_scale' \(checkpoint key 'features.1.0.attn.logit_scale'\) has "
        r'shape \(2, 1, 1\) in the checkpoint but \(1, 1, 1\).*num_heads=\(2, 2, 2, 4\), Swin V2',
    ):
        model.load_state_dict(torchvision_layout(more_heads.state_dict()), strict=False)


def test_conversion_once_gives_a_file_that_loads_the_same(source, tmp_path):
    """The converter behind tools' convert_checkpoint.py, V2 included."""
    converted = convert_state_dict(torchvision_layout(source['own']))
    assert converted.description == 'torchvision (V2)' and converted.version == 2
    model = mini()
    model.load_state_dict(converted.state_dict, strict=False)
    for actual, expected in zip(outputs(model), source['outputs']):
        assert torch.equal(actual, expected)


def test_convert_checkpoint_tool_writes_v2_weights(source, tmp_path, capsys):
    tool = os.path.join(ROOT, 'tools', 'model_converters', 'convert_checkpoint.py')
    spec = importlib.util.spec_from_file_location('convert_checkpoint', tool)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    src, dst = tmp_path / 'mmpretrain.pth', tmp_path / 'mmswin.pth'
    torch.save(mmpretrain_layout(source['own']), src)
    assert module.main([str(src), str(dst)]) == 0
    summary = capsys.readouterr().out
    assert 'MMPretrain (V2)' in summary and 'Swin V2' in summary
    model = mini(init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    model.init_weights()
    assert model.checkpoint_report.source == 'mmswin (V2)'
    for actual, expected in zip(outputs(model), source['outputs']):
        assert torch.equal(actual, expected)
