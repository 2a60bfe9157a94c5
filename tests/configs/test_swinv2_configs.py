"""The SwinV2 configs: each keeps its V1 counterpart's recipe but for the backbone and the
official V2 weight-decay exemptions, builds its model, and feeds the neck or decode head
the backbone's widths."""

from __future__ import annotations

import importlib
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmswin.engine.setup_runner import register_scope
from mmswin.models import SwinV2Backbone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAIRS = {
    'mask_rcnn_swinv2_t.py': 'mask_rcnn_swin_t.py',
    'upernet_swinv2_t.py': 'upernet_swin_t.py',
    'demo/mask_rcnn_swinv2_t_shapes.py': 'demo/mask_rcnn_swin_t_shapes.py',
}
V2_NO_DECAY = {'logit_scale', 'cpb_mlp', 'q_bias', 'v_bias'}


def load(name: str) -> dict:
    return Config.fromfile(os.path.join(ROOT, 'configs', name)).to_dict()


@pytest.mark.parametrize('v2_name', sorted(PAIRS))
def test_the_recipe_is_the_v1_counterparts(v2_name):
    v2, v1 = load(v2_name), load(PAIRS[v2_name])
    assert v2['model']['backbone']['type'] == 'mmswin.SwinV2Backbone'
    v2_keys = v2['optim_wrapper']['paramwise_cfg'].pop('custom_keys')
    v1_keys = v1['optim_wrapper']['paramwise_cfg'].pop('custom_keys')
    assert {key: v2_keys[key] for key in v1_keys} == v1_keys
    assert set(v2_keys) - set(v1_keys) == V2_NO_DECAY
    assert all(v2_keys[key] == dict(decay_mult=0.0) for key in V2_NO_DECAY)
    for config in (v2, v1):
        del config['model']['backbone']
        config.pop('pretrained', None)
    assert v2 == v1


@pytest.mark.parametrize('v2_name', sorted(PAIRS))
def test_the_model_builds_with_matching_widths(v2_name):
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', v2_name))
    cfg.model.backbone.init_cfg = None  # no pretrained file here
    register_scope(cfg)
    registry = importlib.import_module(f'{cfg.default_scope}.registry')
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = registry.MODELS.build(cfg.model)
    backbone = model.backbone
    assert isinstance(backbone, SwinV2Backbone)
    widths = [backbone.num_features[i] for i in backbone.out_indices]
    consumer = cfg.model.neck if 'neck' in cfg.model else cfg.model.decode_head
    assert list(consumer.in_channels) == widths
    with torch.no_grad():
        outs = backbone.eval()(torch.randn(1, 3, 70, 90))
    assert [out.shape[1] for out in outs] == widths and all(out.isfinite().all() for out in outs)
