"""Annotations and label maps that cannot be trained on are named in one line with the
file and the fix before training; annotations MMDetection would drop are dropped with one
counted line per data set and reason. Each case runs tools/train.py on a demo config
over a generated tiny set."""

import json
import math
import os

import cv2
import numpy as np
import pytest

from mmswin.datasets import generate_ade_shapes, generate_coco_shapes

from ..tools_runner import config, run_tool

DET_DEMO = config('demo/mask_rcnn_swin_t_shapes.py')
SEG_DEMO = config('demo/upernet_swin_t_shapes.py')
QUICK = [
    'train_cfg.max_iters=1',
    'train_cfg.val_interval=100',
    'default_hooks.logger.interval=1',
    'train_dataloader.batch_size=2',
    'val_dataloader.batch_size=1',
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False',
    'val_dataloader.num_workers=0',
    'randomness.seed=0',
]
TRAIN_JSON = 'data/coco_shapes/annotations/instances_train2017.json'


def train(folder, config_file: str = DET_DEMO, *options: str):
    return run_tool('train.py', config_file, '--work-dir', 'work', '--cfg-options', *QUICK, *options, cwd=str(folder))


def one_error_line(result) -> str:
    """The tool's only error line (exit code 2, no traceback), its last word on stderr (after
    the libraries' deprecation warnings), given before any training step."""
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-3000:]
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert 'Iter(train)' not in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1 and result.stderr.endswith(errors[0] + '\n'), result.stderr[-3000:]
    return errors[0]


@pytest.fixture
def coco(tmp_path):
    """A scratch folder whose data/coco_shapes holds 6 training and 2 validation images."""
    generate_coco_shapes(str(tmp_path / 'data' / 'coco_shapes'), num_train=6, num_val=2, size_range=(64, 90), seed=3)
    return tmp_path


def edit_json(folder, edit, path: str = TRAIN_JSON):
    path = os.path.join(folder, path)
    with open(path) as f:
        data = json.load(f)
    data = edit(data) or data
    with open(path, 'w') as f:
        json.dump(data, f)


# Valid JSON that is not a COCO instances file.


def _without_annotations(data):
    del data['annotations']


def _as_list(data):
    return data['images']


def _annotation_without_box(data):
    del data['annotations'][0]['bbox']


@pytest.mark.parametrize(
    'edit, problem',
    [
        (
            _without_annotations,
            "it has no 'annotations' key (its keys: categories, images); a COCO file holds images, annotations, "
            'categories',
        ),
        (_as_list, 'it holds a JSON array or value, not an object with images, annotations, categories'),
        (
            _annotation_without_box,
            "annotations[0] has no 'bbox' (each entry of annotations needs id, image_id, category_id, bbox, area)",
        ),
    ],
)
def test_json_without_cocos_layout_is_named_with_the_missing_key(coco, edit, problem):
    edit_json(coco, edit)
    assert one_error_line(train(coco)) == (
        f"error: annotation file '{TRAIN_JSON}' is not a COCO instances file: {problem}; "
        'give the instances_*.json of the set (annotations/ in COCO 2017)'
    )


# Categories.


def test_classes_that_are_none_of_the_files_categories_are_named(coco):
    def rename(data):
        for category, name in zip(data['categories'], ('cat', 'dog', 'bird', 'fish')):
            category['name'] = name

    edit_json(coco, rename)
    assert one_error_line(train(coco)) == (
        f"error: annotation file '{TRAIN_JSON}': none of the 4 classes of the config (rectangle, ellipse, triangle, "
        "star) is one of its categories ('cat', 'dog', 'bird', 'fish'); set the dataset's "
        'metainfo=dict(classes=(...)) to the category names that the file uses'
    )


def test_annotations_whose_category_ids_are_all_unknown_are_named(coco):
    count = []

    def unknown(data):
        for ann in data['annotations']:
            ann['category_id'] = 99
        count.append(len(data['annotations']))

    edit_json(coco, unknown)
    assert one_error_line(train(coco)) == (
        f"error: annotation file '{TRAIN_JSON}': all {count[0]} annotations have a category_id that is not among "
        'its categories (ids used: 99; category ids: 1, 2, 3, 4); fix the category ids'
    )


# Annotations dropped with one counted line per reason.


def test_nan_outside_and_unknown_category_annotations_are_dropped_with_one_line_each(coco):
    dropped = {}

    def spoil(data):
        images = {image['id']: image for image in data['images']}
        anns = data['annotations']
        anns[0]['bbox'][2] = math.nan
        anns[1]['bbox'][0] = images[anns[1]['image_id']]['width'] + 10  # right of the image
        anns[2]['category_id'] = 7
        anns[3]['bbox'] = [1.0, 2.0, math.inf, 4.0]
        dropped.update(nan=anns[0], outside=anns[1], unknown=anns[2], inf=anns[3])

    edit_json(coco, spoil)
    result = train(coco)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Iter(train) [1/1]' in result.stdout

    def where(ann):
        return f'ann {ann["id"]} (image {ann["image_id"]} {ann["image_id"]:06d}.png)'

    expected = [
        f"dropped 1 annotations whose category_id is not among the file's categories: {where(dropped['unknown'])}",
        'dropped 2 annotations whose box is not 4 finite numbers (NaN or infinite): '
        f'{where(dropped["nan"])}, {where(dropped["inf"])}',
        f'dropped 1 annotations whose box lies wholly outside its image: {where(dropped["outside"])}',
    ]
    for line in expected:
        matching = [text for text in result.stdout.splitlines() if text.endswith(f'{TRAIN_JSON}: {line}')]
        assert len(matching) == 1, (line, result.stdout[-3000:])


# An image file of another size than its entry says.


def test_an_image_of_another_size_than_annotated_is_named_before_training(coco):
    changed = {}

    def widen(data):
        image = data['images'][2]
        changed.update(image, annotated_width=image['width'] + 7)
        image['width'] += 7

    edit_json(coco, widen)
    image = f'data/coco_shapes/train2017/{changed["file_name"]}'
    assert one_error_line(train(coco)) == (
        f"error: 1 of 6 images differ in size (width x height) from their entry in '{TRAIN_JSON}': "
        f"'{image}' (image id {changed['id']}) is {changed['width']}x{changed['height']}, annotated "
        f"{changed['annotated_width']}x{changed['height']}; fix the entry's height and width, or replace the image "
        'with the one that was annotated'
    )


# Segmentation label maps that do not fit their images.


@pytest.fixture
def ade(tmp_path):
    """A scratch folder whose data/ade_shapes holds 4 training and 1 validation images."""
    generate_ade_shapes(str(tmp_path / 'data' / 'ade_shapes'), num_train=4, num_val=1, size_range=(64, 90), seed=4)
    return tmp_path


SEG_LABELS = 'data/ade_shapes/annotations/training/training_000001.png'
SEG_IMAGE = 'data/ade_shapes/images/training/training_000001.jpg'


def test_a_label_map_of_another_size_than_its_image_is_named(ade):
    labels = cv2.imread(str(ade / SEG_LABELS), cv2.IMREAD_UNCHANGED)
    height, width = labels.shape
    cv2.imwrite(str(ade / SEG_LABELS), cv2.resize(labels, (width + 5, height), interpolation=cv2.INTER_NEAREST))
    assert one_error_line(train(ade, SEG_DEMO)) == (
        f"error: 1 of 4 label maps do not fit their images: label map '{SEG_LABELS}' is {width + 5}x{height} "
        f"(width x height) but its image '{SEG_IMAGE}' is {width}x{height}; each label map must have its image's size"
    )


def test_a_label_map_with_three_channels_is_named(ade):
    labels = cv2.imread(str(ade / SEG_LABELS), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(ade / SEG_LABELS), np.dstack([labels] * 3))
    assert one_error_line(train(ade, SEG_DEMO)) == (
        f"error: 1 of 4 label maps do not fit their images: label map '{SEG_LABELS}' has 3 channels (a colour "
        'picture of the classes?); a label map holds one class index per pixel: save it as a one-channel or '
        'palette PNG'
    )
