"""A small semantic-segmentation set of synthetic shapes in the ADE20K folder layout.

Layout (as ``data/ade/ADEChallengeData2016``)::

    ROOT/images/{training,validation}/*.jpg
    ROOT/annotations/{training,validation}/*.png   (0 = background, 1.. = SHAPE_CLASSES)
"""

from __future__ import annotations

import functools
import os
from typing import Iterator

import cv2
import numpy as np

from .shapes import SHAPE_CLASSES, write_shape_set

SEG_CLASSES = ('background',) + SHAPE_CLASSES
SPLITS = ('training', 'validation')


def write_ade_split(staging: str, split: str, draws: Iterator) -> None:
    """One split's images and label maps (0 background, shape label + 1) in the ADE20K layout."""
    image_dir = os.path.join(staging, 'images', split)
    label_dir = os.path.join(staging, 'annotations', split)
    os.makedirs(image_dir)
    os.makedirs(label_dir)
    for index, image, shapes in draws:
        labels = np.zeros(image.shape[:2], dtype=np.uint8)
        for shape in shapes:
            labels[shape.visible_mask] = shape.label + 1
        name = f'{split}_{index:06d}'
        cv2.imwrite(os.path.join(image_dir, name + '.jpg'), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(os.path.join(label_dir, name + '.png'), labels)


# generate_ade_shapes(root, num_train=300, num_val=60, size_range=(100, 150), max_shapes=4,
# radius_range=(0.12, 0.3), seed=0) -> root: the set written to ``root`` (replacing it).
generate_ade_shapes = functools.partial(
    write_shape_set, write_split=write_ade_split, splits=SPLITS, min_visible_fraction=0.0
)
