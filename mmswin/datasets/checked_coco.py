"""MMDetection's ``CocoDataset``, with bad annotations reported instead of dropped silently or crashing.

``type='mmswin.CheckedCocoDataset'`` in a dataset config (the default in ``configs/``):

- an annotation file that is not valid JSON: an error naming the file, line and column;
- images that the annotations list but the image folder lacks: skipped, with one warning
  naming them; more than ``max_missing_fraction`` of them missing is an error naming the
  folder (a wrong ``data_prefix`` or an incomplete copy, not a few lost files);
- polygons with fewer than 3 points: that polygon removed, or the whole instance when no
  polygon is left (MMDetection would keep it as an ignored instance with an empty mask);
- boxes with a width or height below 1 pixel (zero or negative included): dropped, as
  MMDetection does, but counted in a warning instead of silently;
- image files that cannot be read: see :class:`~mmswin.datasets.unreadable_images.SkipUnreadableImages`.

Each warning is one line per data set and reason, with the count and the first few ids.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from typing import Optional

from mmdet.datasets import CocoDataset
from mmengine.logging import print_log

from mmswin.engine.preflight import PreflightError, invalid_json_error
from mmswin.registry import DATASETS

from .unreadable_images import SkipUnreadableImages

MAX_LISTED = 5  # ids named in one warning line
DROP_REASONS = {
    'small box': 'dropped {count} annotations whose box has a width or height below 1 pixel',
    'no polygon': 'dropped {count} annotations with no polygon of 3 or more points',
    'short polygon': 'removed polygons with fewer than 3 points from {count} annotations (the rest kept)',
}


def listed(items: list[str]) -> str:
    """The first few items, and how many more."""
    more = f' and {len(items) - MAX_LISTED} more' if len(items) > MAX_LISTED else ''
    return ', '.join(items[:MAX_LISTED]) + more


@DATASETS.register_module()
class CheckedCocoDataset(SkipUnreadableImages, CocoDataset):
    """``CocoDataset`` whose bad annotations and files are named (see the module docstring).

    Args:
        max_missing_fraction (float): most images that may be missing from the image folder
            (as a fraction of those listed) before it is an error. Default: 0.1.
        max_unreadable (int): unreadable image files skipped before it is an error. Default: 100.
        Everything else as ``mmdet.datasets.CocoDataset``.
    """

    def __init__(self, *args, max_missing_fraction: float = 0.1, **kwargs):
        self.max_missing_fraction = max_missing_fraction
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> list[dict]:
        self.dropped = defaultdict(list)  # reason -> where, filled by parse_data_info
        try:
            data_list = super().load_data_list()
        except json.JSONDecodeError as error:
            raise invalid_json_error(self.ann_file, error.lineno, error.colno, error.msg) from None
        for reason, where in self.dropped.items():
            message = DROP_REASONS[reason].format(count=len(where))
            print_log(f'{self.ann_file}: {message}: {listed(where)}', logger='current', level=logging.WARNING)
        del self.dropped
        return self.without_missing_images(data_list)

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
        if ann.get('ignore', False) or ann['category_id'] not in self.cat_ids:
            return ann  # not trained on: MMDetection skips it
        where = f'ann {ann["id"]} (image {image["id"]} {image["file_name"]})'
        _, _, width, height = ann['bbox']
        if width < 1 or height < 1:
            self.dropped['small box'].append(where)
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
