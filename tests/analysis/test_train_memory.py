"""The tensor-level memory accounting of mmswin.analysis.train_memory (docs/memory_recipes.md)."""

import pytest
import torch

from mmswin.analysis.train_memory import RECIPES, measure_recipe, peak_allocated_bytes, scale_to_size, tensor_bytes
from mmswin.engine.setup_runner import load_config


def test_peak_is_the_most_bytes_alive_at_once():
    def step():
        first = torch.empty(1_000_000)  # 4 MB
        second = torch.empty(500_000)  # 2 MB: 6 MB alive
        del first
        third = torch.empty(250_000)  # 1 MB: 3 MB alive
        return second, third

    peak = peak_allocated_bytes(step)
    assert 6_000_000 <= peak < 6_000_000 + 2**16


def test_shared_storages_count_once():
    weight = torch.zeros(10, 10)
    assert tensor_bytes([weight, weight[0], weight.t()]) == 400


def test_scaling_extends_the_line_through_two_measurements():
    small, large = dict(peak_bytes=100), dict(peak_bytes=160)
    assert scale_to_size(small, large, 10, 20, 50) == 340


@pytest.fixture(scope='module')
def tiny_retinanet():
    cfg = load_config('configs/retinanet_swin_t_1x.py')
    cfg.model.backbone.arch = dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2))
    cfg.model.neck.update(in_channels=[32, 64, 128], out_channels=16)
    cfg.model.bbox_head.update(in_channels=16, feat_channels=16)
    return cfg


def test_a_step_is_measured_with_its_optimiser_state(tiny_retinanet):
    result = measure_recipe(tiny_retinanet, RECIPES['fp32'][1], (64, 96), batch_size=1)
    assert result['optimizer_state_bytes'] == result['params_bytes']  # SGD: one momentum buffer each
    assert result['grads_bytes'] == result['params_bytes']
    assert result['step_peak_bytes'] > result['grads_bytes']  # activations come on top
    assert result['peak_bytes'] == result['persistent_bytes'] + result['step_peak_bytes']


@pytest.mark.slow
def test_frozen_stages_train_fewer_parameters(tiny_retinanet):
    full = measure_recipe(tiny_retinanet, RECIPES['fp32'][1], (64, 96), batch_size=1)
    frozen = measure_recipe(tiny_retinanet, RECIPES['frozen_stages'][1], (64, 96), batch_size=1)
    assert frozen['trainable_params'] < full['trainable_params']
    assert frozen['optimizer_state_bytes'] < full['optimizer_state_bytes']
