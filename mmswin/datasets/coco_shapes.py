"""A small COCO-format instance-segmentation set of synthetic shapes.

Layout (the OpenMMLab COCO layout)::

    ROOT/annotations/instances_{train,val}2017.json
    ROOT/{train,val}2017/*.png
"""

from __future__ import annotations

import json
import os

import cv2
import numpy as np

from ..atomic import atomic_directory
from .shapes import SHAPE_CLASSES, check_set_arguments, draw_split, mask_to_polygons

SPLITS = ('train', 'val')


def coco_split(
    rng: np.random.Generator,
    image_dir: str,
    num_images: int,
    size_range: tuple[int, int],
    max_shapes: int,
    radius_range: tuple[float, float],
) -> dict:
    """Draw ``num_images`` images into ``image_dir`` and return their COCO annotation dict."""
    images, annotations = [], []
    for index, image, shapes in draw_split(rng, num_images, size_range, max_shapes, radius_range):
        image_id, (height, width) = index + 1, image.shape[:2]
        file_name = f'{image_id:06d}.png'
        cv2.imwrite(os.path.join(image_dir, file_name), image)
        images.append(dict(id=image_id, file_name=file_name, height=height, width=width))
        for shape in shapes:
            polygons = mask_to_polygons(shape.visible_mask)
            if not polygons:
                continue
            ys, xs = np.nonzero(shape.visible_mask)
            x0, y0 = float(xs.min()), float(ys.min())
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=image_id,
                    category_id=shape.label + 1,
                    segmentation=polygons,
                    area=float(shape.visible_mask.sum()),
                    bbox=[x0, y0, float(xs.max()) + 1 - x0, float(ys.max()) + 1 - y0],
                    iscrowd=0,
                )
            )
    categories = [dict(id=i + 1, name=name, supercategory='shape') for i, name in enumerate(SHAPE_CLASSES)]
    return dict(images=images, annotations=annotations, categories=categories)


def generate_coco_shapes(
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
        os.makedirs(os.path.join(staging, 'annotations'))
        for split, count in zip(SPLITS, (num_train, num_val)):
            image_dir = os.path.join(staging, f'{split}2017')
            os.makedirs(image_dir)
            coco = coco_split(rng, image_dir, count, size_range, max_shapes, radius_range)
            with open(os.path.join(staging, 'annotations', f'instances_{split}2017.json'), 'w') as f:
                json.dump(coco, f)
    return root
