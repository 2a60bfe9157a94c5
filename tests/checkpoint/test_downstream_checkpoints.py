"""Detector and segmentor checkpoints trained with MMDetection's / MMSegmentation's own
Swin load into mmswin's configs, strictly, and give the same features and predictions.

The checkpoints are made here: the published Swin-T config of each library is built
with its own ``SwinTransformer``, seeded random weights (norms, biases and position
tables moved off their init values, so a misplaced tensor shows), and saved the way
their runners save (``meta`` + ``state_dict``). mmswin's config loads the file through
``load_from`` and the tools' runner, and through ``tools/test.py`` (slow).
"""

from __future__ import annotations

import importlib
import json
import os

import mmdet
import mmseg
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmswin.engine import setup_runner

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MMDET_CONFIG = os.path.join(
    os.path.dirname(mmdet.__file__), '.mim', 'configs', 'swin', 'mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'
)
MMSEG_CONFIG = os.path.join(
    os.path.dirname(mmseg.__file__),
    '.mim',
    'configs',
    'swin',
    'swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py',
)
FEATURE_ATOL = 1e-4  # fp32, two implementations of the same arithmetic (measured: about 1e-5)


def perturb_(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if 'relative_position_bias_table' in name:
                param.copy_(noise)
            elif param.dim() == 1:
                param.add_(0.1 * noise)
    return model


def build_theirs(path: str, scope: str, seed: int):
    cfg = Config.fromfile(path)
    cfg.model.backbone.init_cfg = None
    setup_runner.adapt_to_hardware(cfg, 'none')  # SyncBN -> BN
    importlib.import_module(f'{scope}.utils').register_all_modules(init_default_scope=False)
    registry = importlib.import_module(f'{scope}.registry')
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.MODELS.build(cfg.model)
        model.init_weights()
    return perturb_(model, seed).eval()


def save_checkpoint(model: torch.nn.Module, file, library: str) -> None:
    meta = {f'{library}_version': importlib.import_module(library).__version__, 'epoch': 12}
    torch.save(dict(meta=meta, state_dict=model.state_dict()), file)


def load_ours(config: str, checkpoint, work_dir):
    """mmswin's config with ``load_from``, through the runner the tools build."""
    cfg = setup_runner.load_config(os.path.join(ROOT, 'configs', config))
    setup_runner.register_scope(cfg)
    cfg.model.backbone.init_cfg = None
    cfg.load_from = str(checkpoint)
    cfg.work_dir = str(work_dir)
    cfg.launcher = 'none'
    setup_runner.adapt_to_hardware(cfg, 'none')
    cfg.train_dataloader = cfg.train_cfg = cfg.optim_wrapper = cfg.param_scheduler = None
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    runner = setup_runner.build_runner(cfg)
    runner.load_or_resume()
    return runner.model.eval()


def detection_batch(model, shapes=((3, 96, 128), (3, 128, 96))):
    from mmdet.testing import demo_mm_inputs

    batch = demo_mm_inputs(len(shapes), list(shapes), num_classes=80, with_mask=True)
    return model.data_preprocessor(batch, False)


def test_mmdet_mask_rcnn_checkpoint_gives_mmdet_features_and_predictions(tmp_path):
    theirs = build_theirs(MMDET_CONFIG, 'mmdet', seed=5)
    assert type(theirs.backbone).__module__.startswith('mmdet.')
    file = tmp_path / 'mask_rcnn_swin_t_mmdet.pth'
    save_checkpoint(theirs, file, 'mmdet')
    ours = load_ours('mask_rcnn_swin_t.py', file, tmp_path / 'work')
    assert type(ours.backbone).__name__ == 'SwinBackbone'
    assert ours.backbone.checkpoint_report.notes == []
    # Every tensor of the file has its place: the strict load passes, too.
    state = torch.load(file, weights_only=True)['state_dict']
    ours.load_state_dict(state, strict=True)

    torch.manual_seed(0)
    with torch.no_grad(), DefaultScope.overwrite_default_scope('mmdet'):
        data = detection_batch(theirs)
        features = [(a, b) for a, b in zip(ours.extract_feat(data['inputs']), theirs.extract_feat(data['inputs']))]
        ours_pred = ours.predict(data['inputs'], data['data_samples'])
        theirs_pred = theirs.predict(data['inputs'], [s.clone() for s in detection_batch(theirs)['data_samples']])
    assert len(features) == 5  # FPN levels
    for mine, reference in features:
        torch.testing.assert_close(mine, reference, atol=FEATURE_ATOL, rtol=0)
    for mine, reference in zip(ours_pred, theirs_pred):
        a, b = mine.pred_instances, reference.pred_instances
        assert len(a) == len(b) > 0
        torch.testing.assert_close(a.scores, b.scores, atol=1e-4, rtol=0)
        torch.testing.assert_close(a.bboxes, b.bboxes, atol=1e-2, rtol=0)
        assert torch.equal(a.labels, b.labels)
        agreement = (a.masks == b.masks).float().mean()
        assert agreement > 0.999, f'masks agree on {agreement:.4%} of pixels'


def test_mmseg_upernet_checkpoint_gives_mmseg_features_and_predictions(tmp_path):
    theirs = build_theirs(MMSEG_CONFIG, 'mmseg', seed=6)
    assert type(theirs.backbone).__module__.startswith('mmseg.')
    file = tmp_path / 'upernet_swin_t_mmseg.pth'
    save_checkpoint(theirs, file, 'mmseg')
    ours = load_ours('upernet_swin_t.py', file, tmp_path / 'work')
    assert ours.backbone.checkpoint_report.notes == []
    ours.load_state_dict(torch.load(file, weights_only=True)['state_dict'], strict=True)

    torch.manual_seed(0)
    images = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for mine, reference in zip(ours.extract_feat(images), theirs.extract_feat(images)):
            torch.testing.assert_close(mine, reference, atol=FEATURE_ATOL, rtol=0)
        meta = [dict(img_shape=(64, 96), ori_shape=(64, 96), pad_shape=(64, 96), padding_size=[0] * 4)]
        mine, reference = ours.inference(images, meta), theirs.inference(images, meta)
    torch.testing.assert_close(mine, reference, atol=1e-3, rtol=0)
    assert (mine.argmax(1) == reference.argmax(1)).float().mean() > 0.999


def write_coco_set(root, num_images: int = 2) -> None:
    """A COCO-format set with the 80 COCO categories, so an 80-class detector evaluates on it."""
    import cv2

    os.makedirs(root / 'val2017')
    generator = np.random.default_rng(0)
    images, annotations = [], []
    for index in range(num_images):
        height, width = 96, 128
        cv2.imwrite(str(root / 'val2017' / f'{index}.jpg'), generator.integers(0, 255, (height, width, 3), np.uint8))
        images.append(dict(id=index + 1, file_name=f'{index}.jpg', height=height, width=width))
        box = [10.0, 12.0, 40.0, 30.0]
        polygon = [10, 12, 50, 12, 50, 42, 10, 42]
        annotations.append(
            dict(
                id=index + 1,
                image_id=index + 1,
                category_id=1,
                bbox=box,
                area=1200.0,
                iscrowd=0,
                segmentation=[polygon],
            )
        )
    from mmdet.datasets import CocoDataset

    categories = [dict(id=i + 1, name=name) for i, name in enumerate(CocoDataset.METAINFO['classes'])]
    os.makedirs(root / 'annotations')
    with open(root / 'annotations' / 'instances_val2017.json', 'w') as f:
        json.dump(dict(images=images, annotations=annotations, categories=categories), f)


@pytest.mark.slow
def test_tools_test_runs_an_mmdet_checkpoint_with_no_missing_or_unexpected_keys(tmp_path):
    from tests.tools_runner import run_tool

    theirs = build_theirs(MMDET_CONFIG, 'mmdet', seed=5)
    file = tmp_path / 'mask_rcnn_swin_t_mmdet.pth'
    save_checkpoint(theirs, file, 'mmdet')
    data = tmp_path / 'coco'
    write_coco_set(data)
    result = run_tool(
        'test.py',
        'configs/mask_rcnn_swin_t.py',
        str(file),
        '--work-dir',
        str(tmp_path / 'work'),
        '--cfg-options',
        f'test_dataloader.dataset.data_root={data}/',
        f'val_evaluator.ann_file={data}/annotations/instances_val2017.json',
        f'test_evaluator.ann_file={data}/annotations/instances_val2017.json',
        'test_dataloader.num_workers=0',
        'test_dataloader.dataset.pipeline.1.scale=(192,128)',
        cwd=ROOT,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert 'test metrics:' in output and 'coco/bbox_mAP' in output
    # MMEngine's non-strict load names any key it could not place; there is none.
    assert 'missing keys in source state_dict' not in output
    assert 'unexpected key in source state_dict' not in output
