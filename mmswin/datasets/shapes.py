"""Random shapes on random backgrounds: the pixels behind both demo data sets.

No data set can be downloaded on a fresh machine, so the demos learn from images
drawn here. Everything is driven by one ``numpy`` generator, so a seed gives the
same images on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import cv2
import numpy as np

SHAPE_CLASSES = ('rectangle', 'ellipse', 'triangle', 'star')


@dataclass
class DrawnShape:
    """One shape: its class index and the mask of its pixels still visible in the image."""

    label: int
    visible_mask: np.ndarray  # [H, W] bool


def shape_polygon(label: int, center: tuple[float, float], radius: float, angle: float) -> np.ndarray:
    """Outline of a shape of class ``label`` as an ``[K, 2]`` float array of (x, y) points."""
    name = SHAPE_CLASSES[label]
    if name == 'rectangle':
        thetas = np.array([45, 135, 225, 315], dtype=np.float64)
        radii = np.ones(4)
    elif name == 'ellipse':
        thetas = np.linspace(0, 360, 32, endpoint=False)
        radii = np.ones(32)
    elif name == 'triangle':
        thetas = np.array([90, 210, 330], dtype=np.float64)
        radii = np.ones(3)
    else:  # star: 5 outer and 5 inner points
        thetas = np.linspace(90, 450, 10, endpoint=False)
        radii = np.tile([1.0, 0.45], 5)
    thetas = np.deg2rad(thetas + angle)
    if name in ('rectangle', 'ellipse'):
        # Anisotropic: rectangles and ellipses get an aspect ratio via the angle's twin.
        stretch = 0.6 + 0.4 * abs(np.cos(np.deg2rad(angle * 3)))
        x = radius * radii * np.cos(thetas)
        y = radius * radii * np.sin(thetas) * stretch
        rotation = np.deg2rad(angle)
        x, y = x * np.cos(rotation) - y * np.sin(rotation), x * np.sin(rotation) + y * np.cos(rotation)
    else:
        x = radius * radii * np.cos(thetas)
        y = -radius * radii * np.sin(thetas)
    return np.stack([center[0] + x, center[1] + y], axis=1)


def check_set_arguments(num_train: int, num_val: int, size_range: tuple[int, int]) -> None:
    """Reject split sizes and image sizes a generator cannot honour, before writing anything."""
    if num_train < 1 or num_val < 1:
        raise ValueError(f'num_train and num_val must be >= 1, got {num_train} and {num_val}')
    if not 16 <= size_range[0] <= size_range[1]:
        raise ValueError(f'size_range must be (min, max) with 16 <= min <= max, got {size_range}')


def random_image_size(rng: np.random.Generator, size_range: tuple[int, int]) -> tuple[int, int]:
    """(height, width), each drawn from ``size_range``: deliberately not multiples of 32
    (nor of the window), so padding paths are exercised."""
    return int(rng.integers(size_range[0], size_range[1] + 1)), int(rng.integers(size_range[0], size_range[1] + 1))


def class_colour(rng: np.random.Generator, label: int) -> tuple[int, int, int]:
    """A saturated BGR colour from the class's hue band (varied in hue, saturation and
    brightness), so colour is a cue alongside the outline, as in many real categories."""
    hue_centre = 180 * label / len(SHAPE_CLASSES)  # OpenCV hue: 0..180
    hue = (hue_centre + rng.uniform(-12, 12)) % 180
    hsv = np.array([[[hue, rng.uniform(150, 255), rng.uniform(130, 255)]]], dtype=np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def textured_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth, weakly tinted grey gradient plus mild noise, ``[H, W, 3]`` uint8."""
    grey = rng.uniform(40, 215, size=(2, 2, 1))
    corners = (grey + rng.uniform(-20, 20, size=(2, 2, 3))).astype(np.float32)
    background = cv2.resize(corners, (width, height), interpolation=cv2.INTER_LINEAR)
    background += rng.normal(0, 6, size=(height, width, 3)).astype(np.float32)
    return np.clip(background, 0, 255).astype(np.uint8)


def draw_shapes(
    rng: np.random.Generator,
    height: int,
    width: int,
    max_shapes: int,
    min_visible_fraction: float = 0.4,
    radius_range: tuple[float, float] = (0.12, 0.3),
) -> tuple[np.ndarray, list[DrawnShape]]:
    """Draw 1..max_shapes shapes, later ones over earlier ones.

    Returns the image (``[H, W, 3]`` uint8, BGR as OpenCV writes it) and the shapes whose
    visible part is at least ``min_visible_fraction`` of their drawn area, each with
    its visible mask, so annotations always describe what the image shows. Shape radii
    are drawn from ``radius_range``, as fractions of the image's shorter side.
    """
    image = textured_background(rng, height, width)
    owner = np.full((height, width), -1, dtype=np.int32)
    labels, areas = [], []
    for index in range(int(rng.integers(1, max_shapes + 1))):
        label = int(rng.integers(len(SHAPE_CLASSES)))
        radius = rng.uniform(*radius_range) * min(height, width)
        center = (rng.uniform(radius * 0.6, width - radius * 0.6), rng.uniform(radius * 0.6, height - radius * 0.6))
        polygon = shape_polygon(label, center, radius, rng.uniform(0, 360))
        mask = np.zeros((height, width), dtype=np.uint8)
        cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
        colour = class_colour(rng, label)
        image[mask.astype(bool)] = colour
        owner[mask.astype(bool)] = index
        labels.append(label)
        areas.append(int(mask.sum()))
    shapes = []
    for index, (label, area) in enumerate(zip(labels, areas)):
        visible = owner == index
        if area > 0 and visible.sum() >= min_visible_fraction * area:
            shapes.append(DrawnShape(label, visible))
    return image, shapes


def draw_split(
    rng: np.random.Generator,
    count: int,
    size_range: tuple[int, int],
    max_shapes: int,
    radius_range: tuple[float, float],
    min_visible_fraction: float = 0.4,
) -> Iterator[tuple[int, np.ndarray, list[DrawnShape]]]:
    """``(index, image, shapes)`` for the ``count`` images of one split: a random size
    (:func:`random_image_size`), then the shapes (:func:`draw_shapes`). Both demo sets draw
    their splits through this, so they consume ``rng`` in the same order."""
    for index in range(count):
        height, width = random_image_size(rng, size_range)
        image, shapes = draw_shapes(rng, height, width, max_shapes, min_visible_fraction, radius_range)
        yield index, image, shapes


def mask_to_polygons(mask: np.ndarray, min_points: int = 3) -> list[list[float]]:
    """Outer contours of a binary mask as COCO polygons ``[[x0, y0, x1, y1, ...], ...]``."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        if len(contour) >= min_points and cv2.contourArea(contour) >= 2:
            polygons.append(contour.reshape(-1).astype(float).tolist())
    return polygons


# write_split(staging, split, draws): write one split's files under the staging folder;
# ``draws`` yields (index, image, shapes) as :func:`draw_split` does.
SplitWriter = Callable[[str, str, Iterator], None]


def write_shape_set(
    root: str,
    write_split: SplitWriter,
    splits: tuple[str, str],
    min_visible_fraction: float,
    num_train: int = 300,
    num_val: int = 60,
    size_range: tuple[int, int] = (100, 150),
    max_shapes: int = 4,
    radius_range: tuple[float, float] = (0.12, 0.3),
    seed: int = 0,
) -> str:
    """Draw a train and a validation split (``splits`` names them) and write them to
    ``root`` whole (replacing it) with ``write_split``; returns ``root``. Deterministic
    in ``seed``."""
    from ..atomic import atomic_directory

    check_set_arguments(num_train, num_val, size_range)
    rng = np.random.default_rng(seed)
    with atomic_directory(root) as staging:
        for split, count in zip(splits, (num_train, num_val)):
            draws = draw_split(rng, count, size_range, max_shapes, radius_range, min_visible_fraction)
            write_split(staging, split, draws)
    return root
