"""A small COCO-format instance-segmentation set of synthetic shapes.

Layout (the OpenMMLab COCO layout)::

    ROOT/annotations/instances_{train,val}2017.json
    ROOT/{train,val}2017/*.png
"""

from __future__ import annotations

import functools
import json
import os
from typing import Iterator

import cv2
import numpy as np

from .shapes import SHAPE_CLASSES, mask_to_polygons, write_shape_set

SPLITS = ('train', 'val')


def coco_split(draws: Iterator, image_dir: str) -> dict:
    """Write the drawn images into ``image_dir`` and return their COCO annotation dict."""
    images, annotations = [], []
    for index, image, shapes in draws:
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


def write_coco_split(staging: str, split: str, draws: Iterator) -> None:
    """One split's images and its ``instances_<split>2017.json`` in the COCO layout."""
    image_dir = os.path.join(staging, f'{split}2017')
    os.makedirs(image_dir)
    os.makedirs(os.path.join(staging, 'annotations'), exist_ok=True)
    with open(os.path.join(staging, 'annotations', f'instances_{split}2017.json'), 'w') as f:
        json.dump(coco_split(draws, image_dir), f)


# generate_coco_shapes(root, num_train=300, num_val=60, size_range=(100, 150), max_shapes=4,
# radius_range=(0.12, 0.3), seed=0) -> root: the set written to ``root`` (replacing it).
generate_coco_shapes = functools.partial(
    write_shape_set, write_split=write_coco_split, splits=SPLITS, min_visible_fraction=0.4
)
