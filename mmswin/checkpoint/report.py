"""The one-line report printed after a load, and architecture descriptions for errors."""

from __future__ import annotations

import re
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass
class LoadReport:
    """What one ``load_state_dict`` did to a SwinBackbone (or SwinV2Backbone).

    Attributes:
        source: the detected format, e.g. ``'official Swin (classification)'``.
        loaded: tensors copied into the model.
        expected: tensors the model has.
        resized: ``(key, checkpoint shape, model shape)`` of every resized tensor.
        left_at_init: model keys the checkpoint has no tensor for (only output norms and
            the absolute position embedding may be; anything else is an error).
        ignored: reason -> number of checkpoint keys dropped by design (classification
            head, recomputed buffers, stages or output norms the model does not build, keys
            outside ``backbone.``).
        notes: things to look at, logged as a warning.
        model: the backbone's class name.
        details: settings worth stating, logged as information (V2: its windows).
    """

    source: str
    loaded: int = 0
    expected: int = 0
    resized: list = field(default_factory=list)
    left_at_init: list = field(default_factory=list)
    ignored: Counter = field(default_factory=Counter)
    notes: list = field(default_factory=list)
    model: str = 'SwinBackbone'
    details: list = field(default_factory=list)

    def summary(self) -> str:
        parts = [f'{self.model}: loaded {self.loaded}/{self.expected} tensors (format: {self.source})']
        parts.extend(_describe_resized(self.resized))
        if self.left_at_init:
            parts.append(f'left at init (not in the checkpoint): {", ".join(_module_names(self.left_at_init))}')
        if self.ignored:
            parts.append(
                'ignored by design: '
                + ', '.join(f'{reason} ({count})' for reason, count in sorted(self.ignored.items()))
            )
        parts.extend(self.details)
        parts.extend(self.notes)
        return '; '.join(parts)


def _module_names(keys: Sequence[str]) -> list[str]:
    return list(OrderedDict.fromkeys(re.sub(r'\.(weight|bias)$', '', key) for key in keys))


def _describe_resized(resized: Sequence[tuple]) -> list[str]:
    tables = [(old, new) for key, old, new in resized if key.endswith('relative_position_bias_table')]
    parts = []
    if tables:
        sizes = sorted({(_table_side(old), _table_side(new)) for old, new in tables})
        windows = ', '.join(f'{(a + 1) // 2} -> {(b + 1) // 2}' for a, b in sizes)
        parts.append(f'resized {len(tables)} relative position bias tables (bicubic, window {windows})')
    for key, old, new in resized:
        if key == 'absolute_pos_embed':
            parts.append(f'resized absolute_pos_embed (bicubic) {tuple(old)} -> {tuple(new)}')
    return parts


def _table_side(shape: Sequence[int]) -> int:
    return round(shape[0] ** 0.5)


def describe_arch(shapes: Mapping[str, Sequence[int]]) -> str:
    """``'embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7'``
    read from mmswin-layout keys and shapes (stages that are absent are left out)."""
    parts = []
    proj = shapes.get('patch_embed.proj.weight')
    if proj is not None and len(proj) == 4:
        parts.append(f'embed_dims={proj[0]}')
    blocks: dict[int, set] = {}
    for key in shapes:
        match = re.match(r'stages\.(\d+)\.blocks\.(\d+)\.', key)
        if match:
            blocks.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    if blocks:
        stages = range(max(blocks) + 1)
        parts.append(f'depths={tuple(len(blocks.get(i, ())) for i in stages)}')
        tables = [shapes.get(f'stages.{i}.blocks.0.attn.relative_position_bias_table') for i in stages]
        scales = [shapes.get(f'stages.{i}.blocks.0.attn.logit_scale') for i in stages]  # V2: [heads, 1, 1]
        heads = tuple(
            table[1] if table is not None and len(table) == 2 else scale[0] if scale is not None else '?'
            for table, scale in zip(tables, scales)
        )
        parts.append(f'num_heads={heads}')
        if any(scale is not None for scale in scales):
            parts.append('Swin V2')
        first = next((table for table in tables if table is not None and len(table) == 2), None)
        if first is not None:
            parts.append(f'window_size={(_table_side(first) + 1) // 2}')
    return ', '.join(parts) if parts else 'unknown'
