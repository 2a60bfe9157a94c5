"""The synthetic demo data sets: deterministic, consistent, atomic."""

import json
import os

import cv2
import numpy as np
import pytest

from mmswin.datasets import SEG_CLASSES, generate_ade_shapes, generate_coco_shapes
from mmswin.datasets.shapes import SHAPE_CLASSES


def test_coco_shapes_is_valid_coco_and_deterministic(tmp_path):
    from pycocotools.coco import COCO

    a = generate_coco_shapes(str(tmp_path / 'a'), num_train=6, num_val=3, seed=3)
    b = generate_coco_shapes(str(tmp_path / 'b'), num_train=6, num_val=3, seed=3)
    for split in ('train', 'val'):
        ann = f'annotations/instances_{split}2017.json'
        with open(os.path.join(a, ann)) as fa, open(os.path.join(b, ann)) as fb:
            assert json.load(fa) == json.load(fb)
    coco = COCO(os.path.join(a, 'annotations/instances_train2017.json'))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(SHAPE_CLASSES)
    sizes = set()
    for image in coco.loadImgs(coco.getImgIds()):
        pixels = cv2.imread(os.path.join(a, 'train2017', image['file_name']))
        assert pixels.shape[:2] == (image['height'], image['width'])
        sizes.add((image['height'] % 32, image['width'] % 32))
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image['id'])):
            mask = coco.annToMask(ann)
            ys, xs = np.nonzero(mask)
            x, y, w, h = ann['bbox']
            assert w > 0 and h > 0
            # The polygon mask lies inside its box (the box comes from the visible pixels).
            assert xs.min() >= x - 1 and xs.max() <= x + w and ys.min() >= y - 1 and ys.max() <= y + h
    assert sizes != {(0, 0)}


def test_ade_shapes_labels_match_classes(tmp_path):
    root = generate_ade_shapes(str(tmp_path / 'ade'), num_train=4, num_val=2, seed=1)
    labels = sorted(os.listdir(os.path.join(root, 'annotations', 'training')))
    images = sorted(os.listdir(os.path.join(root, 'images', 'training')))
    assert [f[:-4] for f in labels] == [f[:-4] for f in images]
    seen = set()
    for name in labels:
        label = cv2.imread(os.path.join(root, 'annotations', 'training', name), cv2.IMREAD_UNCHANGED)
        seen.update(np.unique(label).tolist())
    assert seen <= set(range(len(SEG_CLASSES))) and len(seen) > 2


def test_generation_error_leaves_nothing_on_disk(tmp_path, monkeypatch):
    import mmswin.datasets.coco_shapes as coco_shapes

    def broken_split(*args, **kwargs):
        raise RuntimeError('disk full')

    monkeypatch.setattr(coco_shapes, 'coco_split', broken_split)
    with pytest.raises(RuntimeError):
        generate_coco_shapes(str(tmp_path / 'coco'), num_train=2, num_val=1)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('kwargs', [dict(num_train=0), dict(size_range=(8, 20)), dict(size_range=(50, 40))])
def test_bad_generator_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate_coco_shapes(str(tmp_path / 'x'), **kwargs)


def test_demo_data_is_generated_once_and_regenerated_when_its_arguments_change(tmp_path):
    from mmengine.config import Config

    from mmswin.datasets import ensure_demo_data

    root = str(tmp_path / 'shapes')
    cfg = Config(dict(demo_data=dict(kind='coco_shapes', root=root, num_train=2, num_val=1, seed=0)))
    assert ensure_demo_data(cfg) is True
    assert ensure_demo_data(cfg) is False
    cfg.demo_data.num_train = 3
    assert ensure_demo_data(cfg) is True
    with open(os.path.join(root, 'annotations', 'instances_train2017.json')) as f:
        assert len(json.load(f)['images']) == 3


def test_demo_data_never_overwrites_a_users_folder(tmp_path):
    from mmengine.config import Config

    from mmswin.datasets import ensure_demo_data

    (tmp_path / 'mine').mkdir()
    (tmp_path / 'mine' / 'keep.txt').write_text('x')
    cfg = Config(dict(demo_data=dict(kind='coco_shapes', root=str(tmp_path / 'mine'), num_train=2, num_val=1)))
    assert ensure_demo_data(cfg) is False
    assert os.listdir(tmp_path / 'mine') == ['keep.txt']


@pytest.mark.parametrize(
    'spec, message',
    [
        (
            dict(kind='voc_shapes', root='x'),
            "demo_data.kind must be one of \\['ade_shapes', 'coco_shapes'\\], got 'voc",
        ),
        (dict(kind='coco_shapes'), 'demo_data needs root'),
        (dict(kind='coco_shapes', root='x', num_images=3), "demo_data: coco_shapes takes no argument 'num_images'"),
        (dict(kind='ade_shapes', root='x', num_train=0), 'demo_data: num_train and num_val must be >= 1'),
    ],
)
def test_a_bad_demo_data_spec_is_named_and_writes_nothing(tmp_path, spec, message):
    from mmengine.config import Config

    from mmswin.datasets import ensure_demo_data
    from mmswin.errors import PreflightError

    spec = dict(spec, root=str(tmp_path / spec['root'])) if 'root' in spec else spec
    with pytest.raises(PreflightError, match=message):
        ensure_demo_data(Config(dict(demo_data=spec)))
    assert os.listdir(tmp_path) == []
