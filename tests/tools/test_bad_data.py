"""Bad data: each broken file or annotation is skipped with a warning naming it, or stops
the run with an error naming it and the fix; never a stack trace from a loader worker."""

import importlib
import json
import logging
import os

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from torch.utils.data import DataLoader

from mmswin.datasets import SEG_CLASSES, SHAPE_CLASSES, generate_ade_shapes, generate_coco_shapes
from mmswin.engine.preflight import check_datasets
from mmswin.errors import PreflightError, UnreadableImageError

from ..tools_runner import config, run_tool

DET_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs'),
]
SEG_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')]


@pytest.fixture(scope='module', autouse=True)
def registered():
    for scope in ('mmdet', 'mmseg'):
        importlib.import_module(f'{scope}.utils').register_all_modules(init_default_scope=False)


@pytest.fixture
def warnings_log(tmp_path):
    """The warnings logged from now on, by this process and its loader workers (a file, as
    forked workers write to it too)."""
    path = tmp_path / 'warnings.log'
    handler = logging.FileHandler(path)
    handler.setLevel(logging.WARNING)
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    yield lambda: path.read_text().splitlines() if path.exists() else []
    logger.removeHandler(handler)
    handler.close()


@pytest.fixture
def coco(tmp_path):
    """A 20-image COCO-format shapes set (PNG images)."""
    return generate_coco_shapes(str(tmp_path / 'coco'), num_train=20, num_val=4, size_range=(48, 64), seed=5)


def build(scope: str, **cfg):
    registry = importlib.import_module(f'{scope}.registry').DATASETS
    with DefaultScope.overwrite_default_scope(scope):
        return registry.build(cfg)


def coco_dataset(root: str, split: str = 'train', **kwargs):
    cfg = dict(
        type='mmswin.CheckedCocoDataset',
        data_root=root,
        ann_file=f'annotations/instances_{split}2017.json',
        data_prefix=dict(img=f'{split}2017/'),
        metainfo=dict(classes=SHAPE_CLASSES),
        pipeline=DET_PIPELINE,
        test_mode=split == 'val',
    )
    return build('mmdet', **dict(cfg, **kwargs))


def edit_annotations(root: str, edit, split: str = 'train', indent=None) -> str:
    path = os.path.join(root, 'annotations', f'instances_{split}2017.json')
    with open(path) as f:
        coco = json.load(f)
    edit(coco)
    with open(path, 'w') as f:
        json.dump(coco, f, indent=indent)
    return path


def image_path(root: str, image_id: int, split: str = 'train') -> str:
    return os.path.join(root, f'{split}2017', f'{image_id:06d}.png')


def corrupt(path: str, how: str) -> str:
    with open(path, 'rb') as f:
        data = f.read()
    broken = {'empty': b'', 'half': data[: len(data) // 2], 'text': b'not an image\n'}[how]
    with open(path, 'wb') as f:
        f.write(broken)
    return path


def loaded_images(dataset, workers: int) -> list:
    """The image path of every sample one pass of a DataLoader yields."""
    loader = DataLoader(dataset, batch_size=1, num_workers=workers, collate_fn=lambda batch: batch[0])
    return [sample['data_samples'].img_path for sample in loader]


# 1. Unreadable or truncated image files.


def test_unreadable_images_are_skipped_and_named_once_across_workers(coco, warnings_log):
    bad = {
        corrupt(image_path(coco, 3), 'empty'): 'empty file',
        corrupt(image_path(coco, 8), 'half'): 'truncated PNG',
        corrupt(image_path(coco, 15), 'text'): "not a readable image (it starts with b'not an image",
    }
    dataset = coco_dataset(coco)
    # Two passes with two workers each (workers start afresh every pass).
    passes = [loaded_images(dataset, workers=2) for _ in range(2)]
    for images in passes:
        assert len(images) == 20  # each skipped sample replaced by another (MMEngine's refetch)
        assert not set(images) & set(bad)
    warnings = [line for line in warnings_log() if 'cannot be read' in line]
    assert len(warnings) == 3, warnings  # once per file, not once per worker or pass
    for path, reason in bad.items():
        image_id = int(os.path.basename(path)[:6])
        assert any(f"'{path}' (image id {image_id}): {reason}" in line for line in warnings), (path, warnings)


def test_too_many_unreadable_images_stop_with_examples_in_one_line(coco):
    bad = [corrupt(image_path(coco, image_id), 'empty') for image_id in (2, 5, 9)]
    dataset = coco_dataset(coco, max_unreadable=2)
    with pytest.raises(UnreadableImageError) as error:
        loaded_images(dataset, workers=1)
    message = str(error.value)  # raised again from the worker, reduced to its line
    assert '\n' not in message and 'Traceback' not in message
    assert message.startswith('3 of 20 samples') and 'max_unreadable (now 2)' in message
    assert all(path in message for path in bad)


def test_unreadable_image_in_evaluation_is_an_error_naming_it(coco):
    path = corrupt(image_path(coco, 2, 'val'), 'half')
    dataset = coco_dataset(coco, 'val')
    dataset[0]
    with pytest.raises(UnreadableImageError, match='evaluation needs every sample') as error:
        dataset[1]
    assert f"'{path}' (image id 2): truncated PNG" in str(error.value)


def test_other_pipeline_errors_are_not_taken_for_bad_files(coco):
    # A config mistake (normalising before any image is loaded), not a bad file: raised as it is.
    dataset = coco_dataset(coco, pipeline=[dict(type='Normalize', mean=[0, 0, 0], std=[1, 1, 1])])
    with pytest.raises(KeyError, match='img'):
        dataset[0]
    assert not dataset.unreadable.any()


# 2. An annotation file that is not valid JSON.


def det_config(root: str) -> Config:
    return Config(
        dict(
            default_scope='mmdet',
            train_dataloader=dict(
                dataset=dict(
                    data_root=root, ann_file='annotations/instances_train2017.json', data_prefix=dict(img='train2017/')
                )
            ),
        )
    )


def test_cut_off_json_fails_preflight_with_line_and_column(coco):
    path = edit_annotations(coco, lambda coco: None, indent=1)
    with open(path) as f:
        text = f.read()
    cut = text[: len(text) * 2 // 3]
    with open(path, 'w') as f:
        f.write(cut)
    lines = cut.rstrip().split('\n')
    with pytest.raises(PreflightError) as error:
        check_datasets(det_config(coco), ('train_dataloader',))
    assert str(error.value).startswith(f"annotation file '{path}' is not valid JSON: ")
    assert f'line {len(lines)} column {len(lines[-1]) + 1}: the file ends before' in str(error.value)


def test_html_instead_of_json_fails_preflight(coco):
    path = os.path.join(coco, 'annotations', 'instances_train2017.json')
    with open(path, 'w') as f:
        f.write('\n  <html><body>403 Forbidden</body></html>\n')
    with pytest.raises(PreflightError, match=r"line 2 column 3: expected '\{' but the file starts with b'<html>"):
        check_datasets(det_config(coco), ('train_dataloader',))


def test_json_syntax_error_inside_the_file_names_line_and_column(coco):
    path = edit_annotations(coco, lambda coco: None, indent=1)
    with open(path) as f:
        lines = f.read().split('\n')
    line = next(i for i, text in enumerate(lines) if '"file_name"' in text)
    lines[line] = lines[line].replace(',', '')  # a missing comma, mid-file
    with open(path, 'w') as f:
        f.write('\n'.join(lines))
    check_datasets(det_config(coco), ('train_dataloader',))  # both ends look fine
    with pytest.raises(PreflightError) as error:
        coco_dataset(coco)
    assert str(error.value).startswith(f"annotation file '{path}' is not valid JSON: line {line + 2} column ")


# 3. Annotations that point to missing images.


def test_a_few_missing_images_are_skipped_with_one_warning(coco, warnings_log):
    os.remove(image_path(coco, 7))
    dataset = coco_dataset(coco)
    assert len(dataset) == 19 and 7 not in [dataset.get_data_info(i)['img_id'] for i in range(19)]
    warnings = [line for line in warnings_log() if 'are not in' in line]
    assert len(warnings) == 1
    assert "1 of 20 images listed in '" in warnings[0] and 'instances_train2017.json' in warnings[0]
    assert '000007.png (id 7)' in warnings[0] and 'skipped' in warnings[0]


def test_images_missing_from_the_folder_is_an_error_naming_it(coco):
    with pytest.raises(PreflightError) as error:
        coco_dataset(coco, data_prefix=dict(img='val2017/'))  # the wrong split's folder
    message = str(error.value)
    assert "16 of 20 images listed in '" in message and os.path.join(coco, 'val2017') in message
    assert '000005.png (id 5)' in message and 'data_prefix.img' in message


# 4. Polygons with fewer than 3 points.


def instances_by_image(dataset) -> dict:
    return {info['img_id']: info['instances'] for info in map(dataset.get_data_info, range(len(dataset)))}


def test_short_polygons_are_removed_and_named(coco, warnings_log):
    before = instances_by_image(coco_dataset(coco))
    edited = {}

    def edit(data):
        first, second = data['annotations'][0], data['annotations'][1]
        first['segmentation'] = [[1.0, 1.0, 9.0, 9.0]]  # 2 points: no polygon left
        second['segmentation'] = second['segmentation'] + [[3.0, 3.0]]  # a 1-point part beside good ones
        edited.update(first=first, second=second)

    path = edit_annotations(coco, edit)
    first, second = edited['first'], edited['second']
    after = instances_by_image(coco_dataset(coco))
    assert len(after[first['image_id']]) == len(before[first['image_id']]) - 1
    x, y, w, h = first['bbox']
    assert [x, y, x + w, y + h] in [inst['bbox'] for inst in before[first['image_id']]]
    assert [x, y, x + w, y + h] not in [inst['bbox'] for inst in after[first['image_id']]]
    masks = [inst['mask'] for inst in after[second['image_id']]]
    assert second['segmentation'][:-1] in masks and second['segmentation'] not in masks
    warnings = [line for line in warnings_log() if path in line]
    image = f'image {first["image_id"]} {first["image_id"]:06d}.png'
    assert len(warnings) == 2
    assert f'dropped 1 annotations with no polygon of 3 or more points: ann {first["id"]} ({image})' in warnings[0]
    assert f'from 1 annotations (the rest kept): ann {second["id"]} (image {second["image_id"]}' in warnings[1]


# 5. Boxes with zero or negative width or height.


def test_degenerate_boxes_are_dropped_with_one_summary_line(coco, warnings_log):
    before = sum(map(len, instances_by_image(coco_dataset(coco)).values()))
    bad_ids = []

    def edit(data):
        for ann, (width, height) in zip(data['annotations'][::3], [(0, 5), (5, 0), (-4, 5), (5, -1)] + [(0, 0)] * 3):
            ann['bbox'][2:] = [width, height]
            bad_ids.append(ann['id'])

    path = edit_annotations(coco, edit)
    after = instances_by_image(coco_dataset(coco))
    assert sum(map(len, after.values())) == before - 7
    assert all(inst['bbox'][2] - inst['bbox'][0] >= 1 for instances in after.values() for inst in instances)
    warnings = [line for line in warnings_log() if path in line]
    assert len(warnings) == 1  # one line per data set and reason, not one per box
    assert 'dropped 7 annotations whose box has a width or height below 1 pixel: ' in warnings[0]
    assert f'ann {bad_ids[0]} (image ' in warnings[0] and warnings[0].endswith(' and 2 more')


def test_an_evaluation_set_without_annotations_loads_with_a_warning(coco, warnings_log):
    """COCO's test-dev lists images and categories only: it can be predicted on, not evaluated."""

    def drop(data):
        del data['annotations']

    path = edit_annotations(coco, drop, split='val')
    dataset = coco_dataset(coco, 'val')
    assert len(dataset) == 4
    assert [line for line in warnings_log() if path in line and "has no 'annotations'" in line]
    edit_annotations(coco, drop)
    with pytest.raises(PreflightError, match="has no 'annotations' key"):
        coco_dataset(coco)  # training needs them


# 6. Segmentation label values beyond the classes.


@pytest.fixture
def ade(tmp_path):
    """A 4-image shapes set in the ADE20K layout (JPEG images, PNG label maps, 5 classes)."""
    return generate_ade_shapes(str(tmp_path / 'ade'), num_train=4, num_val=1, size_range=(48, 64), seed=6)


def seg_dataset(root: str, **kwargs):
    return build(
        'mmseg',
        type='mmswin.CheckedBaseSegDataset',
        data_root=root,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        img_suffix='.jpg',
        seg_map_suffix='.png',
        metainfo=dict(classes=SEG_CLASSES),
        pipeline=SEG_PIPELINE,
        **kwargs,
    )


def test_labels_beyond_the_classes_are_ignored_and_named(ade, warnings_log):
    path = os.path.join(ade, 'annotations', 'training', 'training_000001.png')
    labels = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    labels[:4, :4], labels[-4:, -4:] = 7, 200
    cv2.imwrite(path, labels)
    dataset = seg_dataset(ade)
    for _ in range(2):
        loaded = dataset[1]['data_samples'].gt_sem_seg.data[0].numpy()
        expected = labels.copy()
        expected[expected >= len(SEG_CLASSES)] = 255
        np.testing.assert_array_equal(loaded, expected)
    warnings = [line for line in warnings_log() if 'label map' in line]
    assert len(warnings) == 1 and f"label map '{path}' has values [7, 200] outside the 5 classes" in warnings[0]
    assert (dataset[0]['data_samples'].gt_sem_seg.data < len(SEG_CLASSES)).all()  # clean maps untouched


def test_unreadable_label_map_or_jpeg_is_skipped_and_named(ade, warnings_log):
    label = corrupt(os.path.join(ade, 'annotations', 'training', 'training_000002.png'), 'half')
    image = corrupt(os.path.join(ade, 'images', 'training', 'training_000003.jpg'), 'half')
    images = loaded_images(seg_dataset(ade), workers=1)
    assert len(images) == 4
    assert not {'training_000002.jpg', 'training_000003.jpg'} & {os.path.basename(path) for path in images}
    warnings = '\n'.join(warnings_log())
    assert f"label map '{label}': truncated PNG" in warnings and f"image '{image}': truncated JPEG" in warnings


# End to end: the training tool on a demo set with a broken training and a broken validation image.


def test_train_tool_skips_a_bad_training_image_and_names_a_bad_validation_image(tmp_path):
    root = generate_coco_shapes(str(tmp_path / 'data' / 'coco_shapes'), num_train=6, num_val=2, size_range=(64, 90))
    corrupt(image_path(root, 2), 'half')
    corrupt(image_path(root, 1, 'val'), 'text')
    options = [
        'train_cfg.max_iters=2',
        'train_cfg.val_interval=2',
        'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1',
        'train_dataloader.batch_size=2',
        'val_dataloader.batch_size=2',
        'train_dataloader.num_workers=1',
        'val_dataloader.num_workers=1',
        'randomness.seed=0',
    ]
    demo = config('demo/mask_rcnn_swin_t_shapes.py')
    result = run_tool('train.py', demo, '--work-dir', 'work', '--cfg-options', *options, cwd=str(tmp_path))
    # Training skips the broken image (found in a loader worker), finishes and saves ...
    assert "image 'data/coco_shapes/train2017/000002.png' (image id 2): truncated PNG" in result.stdout
    assert 'Iter(train) [2/2]' in result.stdout and os.path.isfile(tmp_path / 'work' / 'iter_2.pth')
    # ... and validation, which cannot skip an image, stops with one line naming it.
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith('error: ')]
    assert errors == [
        "error: cannot read image 'data/coco_shapes/val2017/000001.png' (image id 1): not a readable image "
        "(it starts with b'not an image\\n'); evaluation needs every sample: replace the file, or remove the "
        'sample from the data set'
    ]
