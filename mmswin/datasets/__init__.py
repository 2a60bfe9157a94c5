"""Deterministic synthetic data sets for the demos and the tests."""

from .ade_shapes import SEG_CLASSES, generate_ade_shapes
from .coco_shapes import generate_coco_shapes
from .demo import ensure_demo_data
from .shapes import SHAPE_CLASSES

__all__ = ['SEG_CLASSES', 'SHAPE_CLASSES', 'generate_ade_shapes', 'ensure_demo_data', 'generate_coco_shapes']
