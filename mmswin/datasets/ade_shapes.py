"""A small semantic-segmentation set of synthetic shapes in the ADE20K folder layout.

Layout (as ``data/ade/ADEChallengeData2016``)::

    ROOT/images/{training,validation}/*.jpg
    ROOT/annotations/{training,validation}/*.png   (0 = background, 1.. = SHAPE_CLASSES)
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from ..atomic import atomic_directory
from .shapes import SHAPE_CLASSES, check_set_arguments, draw_split

SEG_CLASSES = ('background',) + SHAPE_CLASSES
SPLITS = ('training', 'validation')


def generate_ade_shapes(
    root: str,
    num_train: int = 300,
    num_val: int = 60,
    size_range: tuple[int, int] = (100, 150),
    max_shapes: int = 4,
    radius_range: tuple[float, float] = (0.12, 0.3),
    seed: int = 0,
) -> str:
    """Write the set to ``root`` (replacing it) and return ``root``. Deterministic in ``seed``."""
    check_set_arguments(num_train, num_val, size_range)
    rng = np.random.default_rng(seed)
    with atomic_directory(root) as staging:
        for split, count in zip(SPLITS, (num_train, num_val)):
            image_dir = os.path.join(staging, 'images', split)
            label_dir = os.path.join(staging, 'annotations', split)
            os.makedirs(image_dir)
            os.makedirs(label_dir)
            for index, image, shapes in draw_split(
                rng, count, size_range, max_shapes, radius_range, min_visible_fraction=0.0
            ):
                labels = np.zeros(image.shape[:2], dtype=np.uint8)
                for shape in shapes:
                    labels[shape.visible_mask] = shape.label + 1
                name = f'{split}_{index:06d}'
                cv2.imwrite(os.path.join(image_dir, name + '.jpg'), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
                cv2.imwrite(os.path.join(label_dir, name + '.png'), labels)
    return root
