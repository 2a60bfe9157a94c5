"""MMSegmentation data sets whose label maps are checked against the classes.

A label value at or above ``num_classes`` (other than the ignore index) crashes the
cross-entropy loss (on GPU as an opaque device-side assert) and is silently left out of
mIoU. Such values usually come from a few bad pixels (an edited, palette or JPEG-saved
map), so the pixels are set to the ignore index, which the loss and the metric skip, and
the file and its values are named once in a warning: one bad map does not stop a
160k-iteration run, and a wholly wrong label set shows as a warning for every file.

A label map of another size than its image, or with more than one channel (an RGB
picture of the classes instead of their indices), cannot be trained on at all: such files
are named in one error when the data set is built, from the files' headers.

Unreadable image and label map files: see
:class:`~mmswin.datasets.unreadable_images.SkipUnreadableImages`.
"""

from __future__ import annotations

import logging

from mmengine.logging import print_log
from mmseg.datasets import ADE20KDataset, BaseSegDataset

from mmswin.errors import PreflightError
from mmswin.registry import DATASETS

from .image_headers import read_header
from .unreadable_images import SkipUnreadableImages, shared_flags

MAX_LISTED = 3  # files named in one error line


class LabelMapsMatchImages:
    """Mixin for an MMSegmentation data set: every label map must have its image's size and
    one channel, checked from the headers when the data set is built (``check_label_maps``,
    default True; not on remote storage). Files that cannot be read are left to the loader."""

    def __init__(self, *args, check_label_maps: bool = True, **kwargs):
        self.check_label_maps = check_label_maps
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> list[dict]:
        data_list = super().load_data_list()
        if self.check_label_maps and not getattr(self, 'backend_args', None):
            self.check_shapes(data_list)
        return data_list

    def check_shapes(self, data_list: list[dict]) -> None:
        problems = []
        for info in data_list:
            if not info.get('seg_map_path'):
                continue
            labels = read_header(info['seg_map_path'])
            image = read_header(info['img_path'])
            if labels is None or image is None:
                continue
            if labels.channels != 1:
                problems.append(
                    f"label map '{info['seg_map_path']}' has {labels.channels} channels (a colour picture of the "
                    'classes?); a label map holds one class index per pixel: save it as a one-channel or palette PNG'
                )
            elif not image.matches(labels.height, labels.width):
                problems.append(
                    f"label map '{info['seg_map_path']}' is {labels.size_text} (width x height) but its image "
                    f"'{info['img_path']}' is {image.size_text}; each label map must have its image's size"
                )
        if problems:
            more = f'; and {len(problems) - MAX_LISTED} more' if len(problems) > MAX_LISTED else ''
            raise PreflightError(
                f'{len(problems)} of {len(data_list)} label maps do not fit their images: '
                + '; '.join(problems[:MAX_LISTED])
                + more
            )


class IgnoreOutOfRangeLabels:
    """Mixin for an MMSegmentation data set: label values outside the classes become ``ignore_index``."""

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        super().full_init()
        self.label_warned = shared_flags(len(self))

    def prepare_data(self, idx: int):
        data = super().prepare_data(idx)
        if data is None or 'gt_sem_seg' not in data['data_samples']:
            return data
        labels = data['data_samples'].gt_sem_seg.data  # [1, H, W] after the pipeline's crops and resizes
        num_classes = len(self.metainfo['classes'])
        out_of_range = (labels >= num_classes) & (labels != self.ignore_index)
        if out_of_range.any():
            if not self.label_warned[idx]:
                self.label_warned[idx] = True
                path = self.get_data_info(idx)['seg_map_path']
                self.warn_out_of_range(path, labels[out_of_range].unique().tolist(), num_classes)
            labels[out_of_range] = self.ignore_index
        return data

    def warn_out_of_range(self, path: str, values: list[int], num_classes: int) -> None:
        shifted = ' (after reduce_zero_label)' if self.reduce_zero_label else ''
        print_log(
            f"label map '{path}' has values {values}{shifted} outside the {num_classes} classes "
            f'(0..{num_classes - 1}) and the ignore index {self.ignore_index}; those pixels are ignored. '
            'Label maps must hold class indices (a palette/RGB or JPEG-saved map gives such values)',
            logger='current',
            level=logging.WARNING,
        )


@DATASETS.register_module()
class CheckedBaseSegDataset(IgnoreOutOfRangeLabels, LabelMapsMatchImages, SkipUnreadableImages, BaseSegDataset):
    """``BaseSegDataset`` with checked label maps and unreadable files skipped in training.

    Args:
        max_unreadable (int): unreadable files skipped before it is an error. Default: 100.
        check_label_maps (bool): check each label map's size and channels against its
            image when the data set is built. Default: True.
        Everything else as ``mmseg.datasets.BaseSegDataset``.
    """


@DATASETS.register_module()
class CheckedADE20KDataset(IgnoreOutOfRangeLabels, LabelMapsMatchImages, SkipUnreadableImages, ADE20KDataset):
    """``ADE20KDataset`` with checked label maps and unreadable files skipped in training."""
