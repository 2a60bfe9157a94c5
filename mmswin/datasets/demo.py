"""Generate a config's demo data set on first use (``demo_data = dict(kind=..., root=...)``)."""
from __future__ import annotations

import os

from mmengine.logging import print_log

from .ade_shapes import generate_ade_shapes
from .coco_shapes import generate_coco_shapes

DEMO_GENERATORS = {'coco_shapes': generate_coco_shapes, 'ade_shapes': generate_ade_shapes}


def ensure_demo_data(cfg) -> bool:
    """Write the synthetic set that ``cfg.demo_data`` describes, unless it exists.

    Returns True if it generated the data.
    """
    spec = dict(cfg.get('demo_data') or {})
    if not spec:
        return False
    kind = spec.pop('kind', None)
    if kind not in DEMO_GENERATORS:
        raise ValueError(f'demo_data.kind must be one of {sorted(DEMO_GENERATORS)}, got {kind!r}')
    if os.path.isdir(spec['root']):
        return False
    print_log(f"generating the demo data set ({kind}) into {spec['root']}", logger='current')
    DEMO_GENERATORS[kind](**spec)
    return True
