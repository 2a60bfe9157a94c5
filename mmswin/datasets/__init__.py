"""Deterministic synthetic data sets for the demos and the tests.

The checked data sets (``checked_coco``, ``checked_seg``) import MMDetection or
MMSegmentation, so they are not imported here: ``mmswin.registry.DATASETS`` imports them
when a config names ``type='mmswin.Checked...'``.
"""

from .ade_shapes import SEG_CLASSES, generate_ade_shapes
from .coco_shapes import generate_coco_shapes
from .demo import ensure_demo_data
from .shapes import SHAPE_CLASSES

__all__ = ['SEG_CLASSES', 'SHAPE_CLASSES', 'generate_ade_shapes', 'ensure_demo_data', 'generate_coco_shapes']
