"""MMSegmentation data sets whose label maps are checked against the classes.

A label value at or above ``num_classes`` (other than the ignore index) crashes the
cross-entropy loss (on GPU as an opaque device-side assert) and is silently left out of
mIoU. Such values usually come from a few bad pixels (an edited, palette or JPEG-saved
map), so the pixels are set to the ignore index, which the loss and the metric skip, and
the file and its values are named once in a warning: one bad map does not stop a
160k-iteration run, and a wholly wrong label set shows as a warning for every file.

Unreadable image and label map files: see
:class:`~mmswin.datasets.unreadable_images.SkipUnreadableImages`.
"""

from __future__ import annotations

import logging

from mmengine.logging import print_log
from mmseg.datasets import ADE20KDataset, BaseSegDataset

from mmswin.registry import DATASETS

from .unreadable_images import SkipUnreadableImages, shared_flags


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
class CheckedBaseSegDataset(IgnoreOutOfRangeLabels, SkipUnreadableImages, BaseSegDataset):
    """``BaseSegDataset`` with checked label values and unreadable files skipped in training.

    Args:
        max_unreadable (int): unreadable files skipped before it is an error. Default: 100.
        Everything else as ``mmseg.datasets.BaseSegDataset``.
    """


@DATASETS.register_module()
class CheckedADE20KDataset(IgnoreOutOfRangeLabels, SkipUnreadableImages, ADE20KDataset):
    """``ADE20KDataset`` with checked label values and unreadable files skipped in training."""
