"""Generate a config's demo data set on first use (``demo_data = dict(kind=..., root=...)``)."""

from __future__ import annotations

import inspect
import json
import os

from mmengine.logging import print_log

from mmswin.errors import PreflightError

from .ade_shapes import generate_ade_shapes
from .coco_shapes import generate_coco_shapes

DEMO_GENERATORS = {'coco_shapes': generate_coco_shapes, 'ade_shapes': generate_ade_shapes}
STAMP = 'demo_data.json'  # the generator arguments a folder was made with


def ensure_demo_data(cfg) -> bool:
    """Write the synthetic set that ``cfg.demo_data`` describes, unless the folder already
    holds exactly that set (same generator arguments). Returns True if it generated."""
    spec = dict(cfg.get('demo_data') or {})
    if not spec:
        return False
    kind = spec.pop('kind', None)
    if kind not in DEMO_GENERATORS:
        raise PreflightError(f'demo_data.kind must be one of {sorted(DEMO_GENERATORS)}, got {kind!r}')
    if not spec.get('root'):
        raise PreflightError("demo_data needs root, the folder to generate into, e.g. root='data/coco_shapes'")
    root = spec['root']
    wanted = dict(kind=kind, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.items() if k != 'root'})
    stamp = os.path.join(root, STAMP)
    if os.path.isfile(stamp):
        with open(stamp) as f:
            if json.load(f) == wanted:
                return False
    elif os.path.isdir(root):
        return False  # a folder the user made or filled: never overwrite it
    print_log(f'generating the demo data set ({kind}) into {root}', logger='current')
    generator = DEMO_GENERATORS[kind]
    unknown = sorted(set(spec) - set(inspect.signature(generator).parameters))
    if unknown:
        raise PreflightError(f'demo_data: {kind} takes no argument {unknown[0]!r}; see {generator.__module__}')
    try:
        generator(**spec)
    except ValueError as error:  # the generator's own argument checks, made before it writes
        raise PreflightError(f'demo_data: {error}') from None
    with open(stamp, 'w') as f:
        json.dump(wanted, f)
    return True
