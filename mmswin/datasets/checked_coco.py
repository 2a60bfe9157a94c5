"""MMDetection's ``CocoDataset``, with bad annotations reported instead of dropped silently or crashing.

``type='mmswin.CheckedCocoDataset'`` in a dataset config (the default in ``configs/``):

- an annotation file that is not valid JSON: an error naming the file, line and column;
- valid JSON without COCO's layout (no ``images``, ``annotations`` or ``categories``, or an
  entry without a key MMDetection reads): an error naming the missing key;
- none of the configured classes among the file's categories: an error naming both;
  some of them missing: a warning naming those;
- images that the annotations list but the image folder lacks: skipped, with one warning
  naming them; more than ``max_missing_fraction`` of them missing is an error naming the
  folder (a wrong ``data_prefix`` or an incomplete copy, not a few lost files);
- an image whose file is of another size than its entry's ``height`` and ``width``: an
  error naming the file, before training (boxes and masks are drawn at the annotated size);
- annotations dropped, as MMDetection drops them but counted in a warning instead of
  silently: boxes that are not 4 finite numbers (NaN), boxes with a width or height below
  1 pixel, boxes wholly outside their image, and ``category_id`` values that are not among
  the file's categories (all of them unknown is an error);
- polygons with fewer than 3 points: that polygon removed, or the whole instance when no
  polygon is left (MMDetection would keep it as an ignored instance with an empty mask);
- image files that cannot be read: see :class:`~mmswin.datasets.unreadable_images.SkipUnreadableImages`.

Each warning is one line per data set and reason, with the count and the first few ids.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import defaultdict
from typing import Optional

from mmdet.datasets import CocoDataset
from mmdet.datasets.api_wrappers import COCO
from mmengine.logging import print_log

from mmswin.engine.preflight import invalid_json_error
from mmswin.errors import CocoSchemaError, PreflightError
from mmswin.registry import DATASETS

from .image_headers import read_header
from .unreadable_images import SkipUnreadableImages

MAX_LISTED = 5  # ids named in one warning line
DROP_REASONS = {  # in the order the checks run
    'unknown category': "dropped {count} annotations whose category_id is not among the file's categories",
    'bad box': 'dropped {count} annotations whose box is not 4 finite numbers (NaN or infinite)',
    'small box': 'dropped {count} annotations whose box has a width or height below 1 pixel',
    'outside box': 'dropped {count} annotations whose box lies wholly outside its image',
    'no polygon': 'dropped {count} annotations with no polygon of 3 or more points',
    'short polygon': 'removed polygons with fewer than 3 points from {count} annotations (the rest kept)',
}


def listed(items: list[str]) -> str:
    """The first few items, and how many more."""
    more = f' and {len(items) - MAX_LISTED} more' if len(items) > MAX_LISTED else ''
    return ', '.join(items[:MAX_LISTED]) + more


# The keys MMDetection's CocoDataset reads from each entry of a COCO instances file.
COCO_KEYS = {
    'images': ('id', 'file_name', 'height', 'width'),
    'annotations': ('id', 'image_id', 'category_id', 'bbox', 'area'),
    'categories': ('id', 'name'),
}


def coco_schema_problem(dataset: dict, need_annotations: bool = True) -> Optional[str]:
    """What keeps a parsed JSON document from being a COCO instances file, or None.
    ``need_annotations=False`` accepts an image list without annotations (COCO's test-dev)."""
    for section, keys in COCO_KEYS.items():
        if section not in dataset:
            if section == 'annotations' and not need_annotations:
                continue
            found = ', '.join(sorted(map(str, dataset))) or 'none'
            return f"it has no '{section}' key (its keys: {found}); a COCO file holds {', '.join(COCO_KEYS)}"
        entries = dataset[section]
        if not isinstance(entries, list):
            return f"'{section}' is a JSON {type(entries).__name__}, not a list"
        for index, entry in enumerate(entries):
            missing = [key for key in keys if not isinstance(entry, dict) or key not in entry]
            if missing:
                return f"{section}[{index}] has no '{missing[0]}' (each entry of {section} needs {', '.join(keys)})"
    return None


class SchemaCheckedCOCO(COCO):
    """MMDetection's COCO API whose file is checked against COCO's layout before it is indexed."""

    def __init__(self, annotation_file: str, need_annotations: bool = True):
        self.need_annotations = need_annotations
        try:
            super().__init__(annotation_file)
        except AssertionError as error:  # pycocotools asserts that the file holds an object
            if 'not supported' not in str(error):
                raise
            raise CocoSchemaError(
                f'it holds a JSON array or value, not an object with {", ".join(COCO_KEYS)}'
            ) from None

    def createIndex(self) -> None:  # noqa: N802 (pycocotools' name)
        problem = coco_schema_problem(self.dataset, self.need_annotations)
        if problem:
            raise CocoSchemaError(problem)
        super().createIndex()


@DATASETS.register_module()
class CheckedCocoDataset(SkipUnreadableImages, CocoDataset):
    """``CocoDataset`` whose bad annotations and files are named (see the module docstring).

    Args:
        max_missing_fraction (float): most images that may be missing from the image folder
            (as a fraction of those listed) before it is an error. Default: 0.1.
        max_unreadable (int): unreadable image files skipped before it is an error. Default: 100.
        check_image_sizes (bool): compare each image file's size (read from its header) with
            its entry's ``height`` and ``width`` when the data set is built. Default: True.
        Everything else as ``mmdet.datasets.CocoDataset``.
    """

    def __init__(self, *args, max_missing_fraction: float = 0.1, check_image_sizes: bool = True, **kwargs):
        self.max_missing_fraction = max_missing_fraction
        self.check_image_sizes = check_image_sizes
        super().__init__(*args, **kwargs)

    def COCOAPI(self, annotation_file: str) -> SchemaCheckedCOCO:  # noqa: N802 (CocoDataset's name)
        coco = SchemaCheckedCOCO(annotation_file, need_annotations=not self.test_mode)
        self.file_categories = {category['id']: category['name'] for category in coco.dataset['categories']}
        self.file_sections = set(coco.dataset)
        return coco

    def load_data_list(self) -> list[dict]:
        self.dropped = defaultdict(list)  # reason -> where, filled by parse_data_info
        self.unknown_category_ids = set()
        self.trained_annotations = 0  # annotations that reached the checks (not ignored)
        try:
            data_list = super().load_data_list()
        except json.JSONDecodeError as error:
            raise invalid_json_error(self.ann_file, error.lineno, error.colno, error.msg) from None
        except CocoSchemaError as error:
            raise PreflightError(
                f"annotation file '{self.ann_file}' is not a COCO instances file: {error}; "
                'give the instances_*.json of the set (annotations/ in COCO 2017)'
            ) from None
        if 'annotations' not in self.file_sections:
            print_log(
                f"{self.ann_file} has no 'annotations': its images can be predicted (format_only) but not evaluated",
                logger='current',
                level=logging.WARNING,
            )
        self.check_categories()
        for reason in DROP_REASONS:
            where = self.dropped.get(reason)
            if where:
                message = DROP_REASONS[reason].format(count=len(where))
                print_log(f'{self.ann_file}: {message}: {listed(where)}', logger='current', level=logging.WARNING)
        del self.dropped
        data_list = self.without_missing_images(data_list)
        if self.check_image_sizes:
            self.check_sizes_match_files(data_list)
        return data_list

    def check_categories(self) -> None:
        """The configured classes must be categories of the file, and the annotations'
        category ids must not all be unknown to it."""
        classes = list(self.metainfo['classes'])
        names = list(self.file_categories.values())
        absent = [name for name in classes if name not in names]
        categories = listed([f"'{name}'" for name in names]) or 'none'
        if len(absent) == len(classes):
            raise PreflightError(
                f"annotation file '{self.ann_file}': none of the {len(classes)} classes of the config "
                f"({listed(classes)}) is one of its categories ({categories}); set the dataset's "
                'metainfo=dict(classes=(...)) to the category names that the file uses'
            )
        if absent:
            print_log(
                f'{self.ann_file}: classes {listed(absent)} of the config are not categories of this file '
                f'({categories}); no annotation teaches them',
                logger='current',
                level=logging.WARNING,
            )
        unknown = len(self.dropped.get('unknown category', []))
        if unknown and unknown == self.trained_annotations:
            raise PreflightError(
                f"annotation file '{self.ann_file}': all {unknown} annotations have a category_id that is not "
                f'among its categories (ids used: {_ids_text(self.unknown_category_ids)}; '
                f'category ids: {_ids_text(self.file_categories)}); fix the category ids'
            )

    def parse_data_info(self, raw_data_info: dict) -> dict:
        image = raw_data_info['raw_img_info']
        kept = []
        for ann in raw_data_info['raw_ann_info']:
            checked = self.checked_annotation(ann, image)
            if checked is not None:
                kept.append(checked)
        return super().parse_data_info(dict(raw_data_info, raw_ann_info=kept))

    def checked_annotation(self, ann: dict, image: dict) -> Optional[dict]:
        """``ann``, or a copy without its short polygons, or None to drop it."""
        if ann.get('ignore', False):
            return ann  # not trained on: MMDetection skips it
        self.trained_annotations += 1
        where = f'ann {ann["id"]} (image {image["id"]} {image["file_name"]})'
        if ann['category_id'] not in self.file_categories:
            self.dropped['unknown category'].append(where)
            self.unknown_category_ids.add(ann['category_id'])
            return None
        if ann['category_id'] not in self.cat_ids:
            return ann  # a category the config does not train: MMDetection skips it
        box = ann['bbox']
        if not (isinstance(box, list) and len(box) == 4 and all(_finite_number(value) for value in box)):
            self.dropped['bad box'].append(where)
            return None
        x, y, width, height = box
        if width < 1 or height < 1:
            self.dropped['small box'].append(where)
            return None
        # As MMDetection measures it: the part of the box inside the annotated image.
        inside_width = min(x + width, image['width']) - max(x, 0)
        inside_height = min(y + height, image['height']) - max(y, 0)
        if inside_width <= 0 or inside_height <= 0:
            self.dropped['outside box'].append(where)
            return None
        polygons = ann.get('segmentation')
        if isinstance(polygons, list):  # a dict is RLE (crowds)
            usable = [polygon for polygon in polygons if len(polygon) >= 6 and len(polygon) % 2 == 0]
            if not usable:
                self.dropped['no polygon'].append(where)
                return None
            if len(usable) < len(polygons):
                self.dropped['short polygon'].append(where)
                return dict(ann, segmentation=usable)
        return ann

    def without_missing_images(self, data_list: list[dict]) -> list[dict]:
        """``data_list`` less the images its folders lack: one ``listdir`` per folder, so cheap
        for COCO's 118k images. Not checked on remote storage (``backend_args``)."""
        if self.backend_args:
            return data_list
        folders: dict[str, set] = {}
        missing = []
        for info in data_list:
            folder, name = os.path.split(info['img_path'])
            if folder not in folders:
                folders[folder] = set(os.listdir(folder)) if os.path.isdir(folder) else set()
            if name not in folders[folder]:
                missing.append(info)
        if not missing:
            return data_list
        where = sorted({os.path.dirname(info['img_path']) for info in missing})
        examples = listed([f'{os.path.basename(info["img_path"])} (id {info["img_id"]})' for info in missing])
        summary = f"{len(missing)} of {len(data_list)} images listed in '{self.ann_file}' are not in '{where[0]}'"
        if len(missing) > self.max_missing_fraction * len(data_list):
            raise PreflightError(
                f'{summary}: {examples}; point data_prefix.img at the folder that holds them or complete '
                f'the copy (to train on the rest, raise dataset.max_missing_fraction, now {self.max_missing_fraction})'
            )
        print_log(f'{summary} and are skipped: {examples}', logger='current', level=logging.WARNING)
        missing_ids = {info['img_id'] for info in missing}
        return [info for info in data_list if info['img_id'] not in missing_ids]

    def check_sizes_match_files(self, data_list: list[dict]) -> None:
        """Each image file must have its entry's ``height`` and ``width``: boxes and masks are
        drawn at the annotated size, so a mismatch trains on misplaced targets (and can end in
        a NaN loss). Reads only headers; a file that cannot be read is left to the loader.
        Not checked on remote storage (``backend_args``)."""
        if self.backend_args:
            return
        wrong = []
        for info in data_list:
            header = read_header(info['img_path'])
            if header is not None and not header.matches(info['height'], info['width']):
                wrong.append(
                    f"'{info['img_path']}' (image id {info['img_id']}) is {header.size_text}, "
                    f'annotated {info["width"]}x{info["height"]}'
                )
        if wrong:
            raise PreflightError(
                f'{len(wrong)} of {len(data_list)} images differ in size (width x height) from their entry in '
                f"'{self.ann_file}': {listed(wrong)}; fix the entry's height and width, or replace the image "
                'with the one that was annotated'
            )


def _finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _ids_text(ids) -> str:
    return listed([str(value) for value in sorted(ids, key=lambda value: (len(str(value)), str(value)))])
