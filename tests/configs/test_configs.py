"""Every config in configs/ builds its model and its data pipelines."""

import glob
import os

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmswin.engine.setup_runner import register_scope

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, 'configs', '**', '*.py'), recursive=True) if '_base_' not in p)


def test_the_expected_configs_exist():
    names = {os.path.relpath(p, os.path.join(ROOT, 'configs')) for p in CONFIGS}
    for name in (
        'mask_rcnn_swin_t.py',
        'mask_rcnn_swin_t_3x.py',
        'mask_rcnn_swin_s_3x.py',
        'mask_rcnn_swin_b_3x.py',
        'mask_rcnn_swin_t_amp.py',
        'upernet_swin_t.py',
        'upernet_swin_s.py',
        'upernet_swin_b.py',
        'demo/mask_rcnn_swin_t_shapes.py',
        'demo/upernet_swin_t_shapes.py',
    ):
        assert name in names


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: os.path.relpath(p, os.path.join(ROOT, 'configs')))
def test_config_builds_model_and_pipelines(path):
    import importlib

    cfg = Config.fromfile(path)
    register_scope(cfg)
    registry = importlib.import_module(f'{cfg.default_scope}.registry')
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = registry.MODELS.build(cfg.model)
        assert type(model.backbone).__name__ in ('SwinBackbone', 'SwinV2Backbone')
        # The neck / decode head takes exactly the backbone's stage widths.
        widths = [model.backbone.num_features[i] for i in model.backbone.out_indices]
        consumer = next(cfg.model[key] for key in ('neck', 'panoptic_head', 'decode_head') if key in cfg.model)
        assert list(consumer.in_channels) == widths
        from mmengine.dataset import Compose

        if cfg.train_dataloader.dataset.type == 'CocoPanopticDataset':
            # Its annotation loader needs panopticapi, which is not on PyPI (git only).
            pytest.importorskip('panopticapi', reason='COCO panoptic pipelines need panopticapi (git only)')
        for key in ('train_dataloader', 'test_dataloader'):
            pipeline = Compose(cfg[key].dataset.get('pipeline') or cfg[key].dataset.dataset.pipeline)
            assert len(pipeline.transforms) >= 3
