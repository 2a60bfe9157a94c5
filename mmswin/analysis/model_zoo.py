"""docs/model_zoo.md from the configs, so that the page stays true.

For every config under ``configs/`` (``_base_`` skipped) the page states the model, the
backbone, the schedule, parameters and FLOPs at the config's test size (counted by
:mod:`mmswin.analysis.complexity`), the published result the config is meant to
reproduce (read from the config's header comment, with its source) and the demo results
measured here (read from docs/demo_results.json: config path -> {metric: value, ...,
'wall_time_min': minutes, 'command': what was run}).

With ``reuse_counts`` the parameters and FLOPs of configs outside configs/demo/ are taken
from the existing page while the config's model, the input size and the counting rules
are unchanged (a fingerprint of the three is kept in the page); everything else is
recomputed. A change to the backbone's code that changes a count needs the full run.
"""

from __future__ import annotations

import difflib
import glob
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, replace
from typing import Optional

from mmswin.errors import PreflightError

from .complexity import Complexity

PAGE = 'docs/model_zoo.md'


DEMO_RESULTS = 'docs/demo_results.json'


DEMO_DIR = 'configs/demo/'


ARCH_NAMES = {'tiny': 'Swin-T', 'small': 'Swin-S', 'base': 'Swin-B', 'large': 'Swin-L'}


MODEL_NAMES = {
    'MaskRCNN': 'Mask R-CNN',
    'FasterRCNN': 'Faster R-CNN',
    'CascadeRCNN': 'Cascade R-CNN',
    'UPerHead': 'UperNet',
    'FPN': 'FPN',
    'FCNHead': 'FCN',
}


# Phrases of the config headers -> where the figure is published.
SOURCES = {
    'official Swin detection repo': 'https://github.com/SwinTransformer/Swin-Transformer-Object-Detection',
    'official Swin segmentation repo': 'https://github.com/SwinTransformer/Swin-Transformer-Semantic-Segmentation',
    'MMDetection': 'https://github.com/open-mmlab/mmdetection/tree/v3.3.0/configs/swin',
    'MMSegmentation': 'https://github.com/open-mmlab/mmsegmentation/tree/v1.2.2/configs/swin',
}


FINGERPRINT_BLOCK = re.compile(r'<!-- count fingerprints: .*?\n(.*?)\n-->', re.S)


@dataclass
class ZooEntry:
    """One row of the page: a config and what was read or counted for it."""

    path: str  # relative to the repository root, e.g. configs/mask_rcnn_swin_t.py
    scope: str  # mmdet | mmseg
    model: str
    backbone: str
    schedule: str
    published: str
    sources: list
    counts: Complexity  # parameters and FLOPs at the test size
    fingerprint: str
    counts_reused: bool = False

    @property
    def is_demo(self) -> bool:
        return self.path.startswith(DEMO_DIR)


def find_configs(root: str) -> list[str]:
    """Every config under ``root/configs`` except the ``_base_`` fragments, repo-relative."""
    paths = glob.glob(os.path.join(root, 'configs', '**', '*.py'), recursive=True)
    relative = [os.path.relpath(path, root).replace(os.sep, '/') for path in paths]
    return sorted(path for path in relative if '/_base_/' not in path)


def read_header(path: str) -> list[str]:
    """The comment lines at the top of a config, without the ``#``."""
    lines = []
    with open(path) as f:
        for line in f:
            if not line.startswith('#'):
                break
            lines.append(line[1:].strip())
    return lines


def published_result(header: list[str]) -> str:
    """The header's ``Reproduces:`` (or ``Reference:``) statement with its continuation lines."""
    for index, line in enumerate(header):
        match = re.match(r'(Reproduces|Reference):\s*(.*)', line)
        if not match:
            continue
        text = [match.group(2)]
        for follow in header[index + 1 :]:
            if re.match(r'[A-Z][A-Za-z ]*:', follow):  # the next statement, e.g. "Pretrained weights:"
                break
            text.append(follow)
        return ' '.join(text).strip()
    return ''


def sources_of(text: str) -> list[str]:
    return [f'[{name}]({url})' for name, url in SOURCES.items() if name in text]


def describe_model(cfg) -> str:
    model = cfg.model
    if model.get('decode_head'):
        name = MODEL_NAMES.get(model.decode_head.type, model.decode_head.type)
        auxiliary = model.get('auxiliary_head')
        if auxiliary:
            name += f' + {MODEL_NAMES.get(auxiliary.type, auxiliary.type)} auxiliary head'
        return name
    name = MODEL_NAMES.get(model.type, model.type)
    if model.get('neck'):
        name += f' + {MODEL_NAMES.get(model.neck.type, model.neck.type)}'
    return name


def describe_backbone(cfg) -> str:
    backbone = cfg.model.backbone
    arch = backbone.get('arch', 'tiny')
    if isinstance(arch, str):
        name = ARCH_NAMES.get(arch, arch)
    else:
        depths = '-'.join(str(depth) for depth in arch['depths'])
        name = f'Swin {arch["embed_dims"]}-wide, depths {depths}'
    details = [f'window {backbone.get("window_size", 7)}']
    if backbone.get('mask_padding'):
        details.append('padding masked')
    init_cfg = backbone.get('init_cfg') or {}
    checkpoint = init_cfg.get('checkpoint') if isinstance(init_cfg, dict) else None
    details.append(f'init {os.path.basename(checkpoint)}' if checkpoint else 'from scratch')
    return f'{name} ({", ".join(details)})'


def describe_schedule(cfg) -> str:
    loop = cfg.train_cfg
    if 'max_epochs' in loop:
        epochs = loop.max_epochs
        length = f'{epochs} epochs' + (f' ({epochs // 12}x)' if epochs % 12 == 0 else '')
    else:
        iters = loop.max_iters
        length = f'{iters // 1000}k iterations' if iters % 1000 == 0 else f'{iters} iterations'
    parts = [length]
    optimizer = cfg.optim_wrapper.get('optimizer', {})
    if optimizer:
        parts.append(f'{optimizer.type} lr {optimizer.lr:g}')
    batch = (cfg.get('auto_scale_lr') or {}).get('base_batch_size') or cfg.train_dataloader.batch_size
    parts.append(f'batch {batch}')
    if 'Amp' in cfg.optim_wrapper.get('type', ''):
        parts.append('mixed precision')
    return ', '.join(parts)


def fingerprint(cfg, size: tuple) -> str:
    """What the counts depend on: the model config (weights' sources aside), the input
    size and the counter's rules (:data:`mmswin.analysis.flops.COUNTING_RULES`)."""
    from .flops import COUNTING_RULES

    model = cfg.model.to_dict()
    if isinstance(model.get('backbone'), dict):
        model['backbone'].pop('init_cfg', None)
    text = json.dumps({'model': model, 'input': list(size), 'rules': COUNTING_RULES}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_fingerprints(page_text: str) -> dict:
    """config path -> (fingerprint, Complexity) from a page's hidden block."""
    match = FINGERPRINT_BLOCK.search(page_text)
    kept = {}
    for line in match.group(1).splitlines() if match else []:
        fields = line.split()
        if len(fields) != 8 or not all(field.isdigit() for field in fields[2:]):
            continue  # written by an older generator: counted again
        path, key = fields[:2]
        params, backbone_params, flops, backbone_flops, height, width = (int(field) for field in fields[2:])
        kept[path] = (
            key,
            Complexity(
                params=params,
                backbone_params=backbone_params,
                flops=flops,
                backbone_flops=backbone_flops,
                input_size=(height, width),
                requested_size=None,
                proposals=None,
            ),
        )
    return kept


def collect(root: str, reuse: Optional[dict], progress: bool = True) -> list[ZooEntry]:
    """Read and count every config. ``reuse``: the fingerprints and counts of an existing
    page, kept for configs outside configs/demo/ whose fingerprint is unchanged (None:
    count everything)."""
    from mmengine.utils import ProgressBar

    from mmswin.engine.setup_runner import load_config

    from .complexity import count_complexity, test_input_size

    paths = find_configs(root)
    bar = ProgressBar(len(paths), file=sys.stderr) if progress else None
    # Configs that differ only in schedule or data share a model: count each model once.
    counted: dict = {}
    entries = []
    for path in paths:
        cfg = load_config(os.path.join(root, path))
        size = test_input_size(cfg)
        key = fingerprint(cfg, size)
        published = published_result(read_header(os.path.join(root, path)))
        row = dict(
            path=path,
            scope=cfg.default_scope,
            model=describe_model(cfg),
            backbone=describe_backbone(cfg),
            schedule=describe_schedule(cfg),
            published=published,
            sources=sources_of(published),
            fingerprint=key,
        )
        kept = (reuse or {}).get(path)
        reused = bool(kept and kept[0] == key and not path.startswith(DEMO_DIR))
        if reused:
            counts = replace(kept[1], requested_size=size)
        else:
            if key not in counted:
                counted[key] = count_complexity(cfg, size)
            counts = counted[key]
        entries.append(ZooEntry(**row, counts=counts, counts_reused=reused))
        if bar is not None:
            bar.update()
    if bar is not None:
        sys.stderr.write('\n')
    return entries


def format_measured(results: Optional[dict], entry: ZooEntry) -> tuple[str, str]:
    """(metrics, wall time) cells for a config from docs/demo_results.json: metric values,
    ``wall_time_min`` and the ``command`` that measured them."""
    measured = dict((results or {}).get(entry.path) or {})
    if not measured:
        return ('not measured yet' if entry.is_demo else 'not run here (needs the full data set and GPUs)'), '-'
    wall, command = measured.pop('wall_time_min', None), measured.pop('command', None)
    metrics = [
        f'{name} {value:.4g}' if isinstance(value, (int, float)) else f'{name}: {value}'
        for name, value in measured.items()
    ]
    time = f'{wall:g} min' if isinstance(wall, (int, float)) else '-'
    if command:
        time += f' (`{command}`)'
    return ', '.join(metrics) or '-', time


def size_text(entry: ZooEntry) -> str:
    counts = entry.counts
    text = f'{counts.requested_size[0]}x{counts.requested_size[1]}'
    if tuple(counts.input_size) != tuple(counts.requested_size):
        text += f' (padded to {counts.input_size[0]}x{counts.input_size[1]})'
    return text


def render(entries: list[ZooEntry], demo_results: Optional[dict]) -> str:
    def cost_cells(entry: ZooEntry) -> str:
        counts = entry.counts
        params = f'{counts.params / 1e6:.2f} / {counts.backbone_params / 1e6:.2f}'
        flops = f'{counts.flops / 1e9:.2f} / {counts.backbone_flops / 1e9:.2f}'
        return f'{params} | {flops} | {size_text(entry)}'

    order = sorted(entries, key=lambda entry: (entry.counts.backbone_params, entry.path))
    sections = [
        ('Detection (COCO 2017)', [e for e in order if e.scope == 'mmdet' and not e.is_demo]),
        ('Semantic segmentation (ADE20K)', [e for e in order if e.scope == 'mmseg' and not e.is_demo]),
    ]
    lines = [
        '# Model zoo',
        '',
        '<!-- Generated by tools/misc/model_zoo.py from configs/ and docs/demo_results.json; do not edit by hand. -->',
        'Every config under `configs/`, generated by `python tools/misc/model_zoo.py` from the configs themselves '
        '(`--check` says whether this page is current; the tests run it). Parameters and FLOPs are counted on the '
        'model each config builds, at its test size; "published" is what the config\'s header says it reproduces.',
        '',
    ]
    header = (
        '| config | model | backbone | schedule | params (M): model / backbone | '
        'FLOPs (G): model / backbone | at (H x W) | published (single-scale) | source |'
    )
    for title, rows in sections:
        if not rows:
            continue
        lines += [f'## {title}', '', header, '|' + ' --- |' * 9]
        for entry in rows:
            published = entry.published.replace('|', '/') or '-'
            lines.append(
                f'| [`{entry.path}`](../{entry.path}) | {entry.model} | {entry.backbone} | '
                f'{entry.schedule} | {cost_cells(entry)} | {published} | {", ".join(entry.sources) or "-"} |'
            )
        lines.append('')

    demos = [entry for entry in order if entry.is_demo]
    if demos:
        lines += [
            '## Demo configs (measured here)',
            '',
            'Small models trained from scratch on the generated shapes sets (`make demo`, `make demo-seg`), on a '
            '2-core CPU. Results are on the generated validation split, read from `docs/demo_results.json`.',
            '',
            '| config | model | backbone | schedule | params (M): model / backbone | FLOPs (G): model / backbone | '
            'at (H x W) | result (validation) | wall time |',
            '|' + ' --- |' * 9,
        ]
        for entry in demos:
            measured, wall = format_measured(demo_results, entry)
            lines.append(
                f'| [`{entry.path}`](../{entry.path}) | {entry.model} | {entry.backbone} | '
                f'{entry.schedule} | {cost_cells(entry)} | {measured} | {wall} |'
            )
        lines.append('')

    others = [entry for entry in order if not entry.is_demo and demo_results and entry.path in demo_results]
    for entry in others:
        measured, wall = format_measured(demo_results, entry)
        lines.append(f'Measured here for `{entry.path}`: {measured} ({wall}).')
    if others:
        lines.append('')

    proposals = 'RoI heads for `test_cfg.rpn.max_per_img` proposals (1000 for COCO), the mask head for the first 100'
    lines += [
        '## How the numbers are made',
        '',
        '- **Parameters**: all parameters of the model the config builds (for UperNet including the auxiliary '
        'head, which is only used in training).',
        '- **FLOPs**: multiply-adds of the work the default path runs (`mmswin.analysis.flops`, with the rules '
        "of MMEngine's `FlopAnalyzer`, the convention of the Swin paper and of the MMDetection / MMSegmentation "
        'tables; window-padded tokens get no MLP and no output projection) on one image of the size shown, '
        'padded as the data preprocessor pads it; detectors count the '
        f"{proposals}. Detection test size: the test pipeline's `Resize` scale (800x1333 for COCO); "
        'segmentation: the crop size (512x512 for ADE20K). Any config, any size: '
        '`python tools/analysis_tools/get_flops.py CONFIG --shape H W`.',
        '- **Published**: the figure and source each config states in its first lines.',
        '',
        '<!-- count fingerprints: config, sha256 of its model and test size, params, backbone params, FLOPs, '
        'backbone FLOPs, H, W',
    ]
    lines += [
        f'{e.path} {e.fingerprint} {e.counts.params} {e.counts.backbone_params} {e.counts.flops} '
        f'{e.counts.backbone_flops} {e.counts.input_size[0]} {e.counts.input_size[1]}'
        for e in sorted(entries, key=lambda entry: entry.path)
    ]
    lines += ['-->', '']
    return '\n'.join(lines)


def read_demo_results(path: str) -> Optional[dict]:
    """docs/demo_results.json: config path -> {metric: value, ...}; None if there is none."""
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        try:
            demo_results = json.load(f)
        except json.JSONDecodeError as error:
            raise PreflightError(f"'{path}' is not valid JSON: {error}") from None
    wrong = [key for key, value in demo_results.items() if not isinstance(value, dict)]
    if wrong:
        raise PreflightError(
            f"'{path}' maps config paths to {{metric: value, 'wall_time_min': "
            f'minutes}} per config; {wrong[0]!r} maps to {demo_results[wrong[0]]!r}'
        )
    return demo_results


def update_model_zoo(
    root: str, out: str, demo_results_path: str, check: bool = False, reuse_counts: bool = False
) -> int:
    """Regenerate the page of the checkout at ``root`` and write it to ``out``, or with
    ``check`` compare it with ``out`` (prints the diff). Returns the exit code: 1 if the
    checked page is stale, else 0."""
    from mmswin.engine.preflight import check_output_file

    if not check:
        check_output_file(out, '--out', 'model_zoo.md')  # before minutes of counting
    existing = None
    if os.path.isfile(out):
        with open(out) as f:
            existing = f.read()
    elif check:
        raise PreflightError(f"no page to check at '{out}'; generate it with python tools/misc/model_zoo.py")
    demo_results = read_demo_results(demo_results_path)

    inside = os.path.abspath(out).startswith(root + os.sep)
    shown = os.path.relpath(out, root) if inside else out
    reuse = read_fingerprints(existing or '') if reuse_counts else None
    entries = collect(root, reuse)
    page = render(entries, demo_results)
    reused = sum(entry.counts_reused for entry in entries)
    note = f' (counts of {reused} configs kept from the page, fingerprints unchanged)' if reused else ''
    if check:
        if page == existing:
            print(f'{shown} is current: {len(entries)} configs{note}')
            return 0
        diff = difflib.unified_diff(existing.splitlines(True), page.splitlines(True), 'committed', 'regenerated')
        sys.stdout.writelines(diff)
        print(
            f'\n{shown} is stale; regenerate it with `python tools/misc/model_zoo.py --reuse-counts` '
            '(counts changed models only)'
        )
        return 1
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, 'w') as f:
        f.write(page)
    print(f'wrote {shown}: {len(entries)} configs{note}')
    return 0
