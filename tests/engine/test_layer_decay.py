"""Layer-wise lr decay: each parameter group's lr and weight decay, for Swin V1 and V2."""

from __future__ import annotations

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from torch import nn

from mmswin.engine.layer_decay import SwinLayerDecayOptimWrapperConstructor, swin_layer_id
from mmswin.models import SwinBackbone, SwinV2Backbone

ARCH = dict(embed_dims=16, depths=(2, 1, 3), num_heads=(1, 2, 4))  # 6 blocks: num_layers = 7
BASE_LR, WEIGHT_DECAY, RATE = 1e-3, 0.05, 0.5
CFG = dict(
    type='OptimWrapper',
    constructor='mmswin.SwinLayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=BASE_LR, weight_decay=WEIGHT_DECAY),
    paramwise_cfg=dict(decay_rate=RATE),
)


class Detector(nn.Module):
    """A backbone with a neck and a head, like an MMDetection model."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.neck = nn.Sequential(nn.Conv2d(64, 8, 1), nn.GroupNorm(2, 8))
        self.head = nn.Linear(8, 3)


def expected_layer_id(name: str) -> int:
    """Written out for ARCH, independently of the rule's implementation."""
    table = {
        'patch_embed': 0,
        'absolute_pos_embed': 0,
        'stages.0.blocks.0': 1,
        'stages.0.blocks.1': 2,
        'stages.0.downsample': 3,  # with stage 1's first block
        'stages.1.blocks.0': 3,
        'stages.1.downsample': 4,
        'stages.2.blocks.0': 4,
        'stages.2.blocks.1': 5,
        'stages.2.blocks.2': 6,
    }
    local = name[len('backbone.') :]
    for prefix, layer_id in table.items():
        if local.startswith(prefix + '.') or local == prefix:
            return layer_id
    return 7  # output norms, neck, head


def expected_decays(name: str) -> bool:
    no_decay = ('norm', 'absolute_pos_embed', 'relative_position_bias_table', 'logit_scale', 'cpb_mlp', 'neck.1.')
    return not any(key in name for key in no_decay)


def check_groups(model: nn.Module) -> list[dict]:
    optim_wrapper = build_optim_wrapper(model, CFG)
    groups = optim_wrapper.optimizer.param_groups
    seen = set()
    for group in groups:
        for name, param in zip(group['param_names'], group['params']):
            layer_id = expected_layer_id(name)
            assert group['lr'] == pytest.approx(BASE_LR * RATE ** (7 - layer_id)), name
            assert group['weight_decay'] == (WEIGHT_DECAY if expected_decays(name) else 0.0), name
            assert dict(model.named_parameters())[name] is param
            seen.add(name)
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    assert seen == trainable
    return groups


def test_v1_groups_get_the_layer_lr_and_the_no_decay_rules():
    model = Detector(SwinBackbone(arch=ARCH, out_indices=(0, 1, 2), use_abs_pos_embed=True))
    groups = check_groups(model)
    by_name = {name: group for group in groups for name in group['param_names']}
    assert by_name['backbone.patch_embed.proj.weight']['lr'] == pytest.approx(BASE_LR * RATE**7)
    assert by_name['backbone.stages.0.downsample.reduction.weight']['lr'] == pytest.approx(BASE_LR * RATE**4)
    assert by_name['head.weight']['lr'] == BASE_LR and by_name['backbone.norm2.weight']['lr'] == BASE_LR
    assert by_name['backbone.stages.2.blocks.2.attn.relative_position_bias_table']['weight_decay'] == 0.0
    assert by_name['backbone.stages.2.blocks.2.attn.qkv.bias']['weight_decay'] == WEIGHT_DECAY
    assert by_name['neck.1.weight']['weight_decay'] == 0.0  # a GroupNorm outside the backbone


def test_v2_position_mlp_logit_scale_and_qv_biases_follow_their_block():
    model = Detector(SwinV2Backbone(arch=ARCH, out_indices=(0, 1, 2)))
    groups = check_groups(model)
    by_name = {name: group for group in groups for name in group['param_names']}
    for name in ('attn.logit_scale', 'attn.cpb_mlp.0.weight', 'attn.cpb_mlp.0.bias', 'attn.cpb_mlp.2.weight'):
        group = by_name[f'backbone.stages.1.blocks.0.{name}']
        assert (group['lr'], group['weight_decay']) == (pytest.approx(BASE_LR * RATE**4), 0.0)
    for name in ('attn.q_bias', 'attn.v_bias'):
        group = by_name[f'backbone.stages.2.blocks.1.{name}']
        assert (group['lr'], group['weight_decay']) == (pytest.approx(BASE_LR * RATE**2), WEIGHT_DECAY)


def test_frozen_stages_are_left_out():
    model = Detector(SwinBackbone(arch=ARCH, out_indices=(0, 1, 2), frozen_stages=1))
    groups = check_groups(model)
    names = {name for group in groups for name in group['param_names']}
    assert not any(name.startswith(('backbone.patch_embed.', 'backbone.stages.0.')) for name in names)
    assert 'backbone.stages.1.downsample.reduction.weight' in names


def test_a_bare_backbone_is_its_own_model_and_a_training_step_runs():
    backbone = SwinBackbone(arch=ARCH, out_indices=(2,))
    optim_wrapper = build_optim_wrapper(backbone, CFG)
    assert min(group['layer_id'] for group in optim_wrapper.optimizer.param_groups) == 0
    loss = backbone(torch.randn(1, 3, 32, 32))[0].square().mean()
    optim_wrapper.update_params(loss)  # AdamW steps with the per-group lrs


def test_layer_id_rule():
    depths = (2, 2, 18, 2)
    assert swin_layer_id('patch_embed.proj.weight', depths) == 0
    assert swin_layer_id('stages.2.blocks.17.mlp.fc1.weight', depths) == 22
    assert swin_layer_id('stages.2.downsample.norm.weight', depths) == 23
    assert swin_layer_id('stages.3.blocks.1.norm1.weight', depths) == 24
    assert swin_layer_id('norm3.weight', depths) == 25


@pytest.mark.parametrize(
    ('paramwise_cfg', 'error', 'words'),
    [
        (dict(), ValueError, 'decay_rate must be a number in (0, 1]'),
        (dict(decay_rate=1.5), ValueError, 'decay_rate must be a number in (0, 1]'),
        (dict(decay_rate=0.9, custom_keys={}), ValueError, "['custom_keys'] not understood"),
        (dict(decay_rate=0.9, no_decay_names='norm'), TypeError, 'no_decay_names must be a list'),
    ],
)
def test_bad_paramwise_cfg_is_named(paramwise_cfg, error, words):
    with pytest.raises(error) as info:
        SwinLayerDecayOptimWrapperConstructor(dict(CFG, paramwise_cfg=None), paramwise_cfg)
    assert words in str(info.value)


def test_a_model_without_a_swin_backbone_is_refused():
    with pytest.raises(TypeError, match='needs a Swin backbone'):
        build_optim_wrapper(nn.Sequential(nn.Linear(2, 2)), CFG)
