"""Loss and metric curves from MMEngine training logs (``vis_data/scalars.json``).

A LOG is a ``scalars.json`` (one JSON object per line, written by MMEngine's
LocalVisBackend under ``WORK_DIR/<timestamp>/vis_data/``) or a work dir, whose newest
run that logged the keys is used. A key is matched as written or as the last part of a logged key:
``bbox_mAP`` finds ``coco/bbox_mAP``, ``mIoU`` finds ``mIoU``. Training values are
plotted against the iteration; validation values against the epoch for epoch-based
schedules, the iteration otherwise.
"""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass

from mmswin.errors import LogError

# Logged with every line; never a curve of its own.
BOOKKEEPING = ('iter', 'step', 'epoch')


@dataclass
class Curve:
    """The values of one logged key in one log."""

    key: str  # as logged, e.g. coco/bbox_mAP
    steps: list
    values: list
    x_label: str


def find_log(path: str, keys: list[str]) -> str:
    """A scalars.json file, or the newest run under a work dir that logged one of ``keys``
    (a later ``tools/test.py`` run in the same work dir logs metrics but no loss)."""
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise LogError(f"log not found: '{path}'; pass a scalars.json or a work dir")
    for pattern in (
        'scalars.json',
        os.path.join('vis_data', 'scalars.json'),
        os.path.join('*', 'vis_data', 'scalars.json'),
    ):
        runs = sorted(glob.glob(os.path.join(path, pattern)))  # run folders are timestamps
        if runs:
            for run in reversed(runs):
                try:
                    entries = read_log(run)
                except LogError:
                    continue  # an empty or broken run: look at the one before
                if any(matching_keys(entries, key) for key in keys):
                    return run
            return runs[-1]
    raise LogError(
        f"no training log in '{path}': expected {path}/<timestamp>/vis_data/scalars.json; "
        'train with tools/train.py first'
    )


def read_log(path: str) -> list[dict]:
    entries = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                raise LogError(
                    f"'{path}' line {number} is not JSON; expected MMEngine's scalars.json (one JSON object per line)"
                ) from None
            if isinstance(entry, dict):
                entries.append(entry)
    if not entries:
        raise LogError(f"'{path}' holds no logged values yet")
    return entries


def matching_keys(entries: list[dict], wanted: str) -> list[str]:
    """``wanted`` as logged, else every logged key that ends with ``/wanted``."""
    logged = {key for entry in entries for key in entry}
    if wanted in logged:
        return [wanted]
    return sorted(key for key in logged if key.endswith('/' + wanted))


def curve(entries: list[dict], key: str) -> Curve:
    """The points of ``key``. Training lines carry ``iter``; validation lines only ``step``,
    which is the epoch for epoch-based training. For iteration-based training the
    validation point goes to the iteration it follows: MMEngine's LoggerHook logs it at
    step 0 there unless ``log_metric_by_epoch=False``."""
    by_epoch = any('epoch' in entry for entry in entries)
    steps, values = [], []
    last_iter = None
    iteration_axis = True
    for entry in entries:
        if 'iter' in entry:
            last_iter = entry['iter']
        value = entry.get(key)
        if not isinstance(value, (int, float)):
            continue
        if 'iter' in entry:
            steps.append(entry['iter'])
        elif by_epoch:
            steps.append(entry.get('step', 0))
            iteration_axis = False
        else:
            steps.append(max(entry.get('step', 0), last_iter or 0))
        values.append(value)
    return Curve(key=key, steps=steps, values=values, x_label='iteration' if iteration_axis else 'epoch')


def plot_curve(logs: list[str], keys: list[str], out: str, legend=None, title=None) -> None:
    """One panel per key in ``keys``, a line per log in ``logs`` (files or work dirs), saved to ``out``."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    paths = [find_log(path, keys) for path in logs]
    if legend and len(legend) != len(paths):
        raise LogError(f'--legend needs one name per log: {len(paths)} logs, {len(legend)} names')
    entries_per_log = [read_log(path) for path in paths]
    names = legend or [_run_name(path) for path in paths]

    panels = []  # (wanted key, [(log name, Curve)])
    for wanted in keys:
        found = []
        for name, entries in zip(names, entries_per_log):
            found += [(name, curve(entries, key)) for key in matching_keys(entries, wanted)]
        if not found:
            available = sorted(
                {
                    key
                    for entries in entries_per_log
                    for entry in entries
                    for key, value in entry.items()
                    if isinstance(value, (int, float)) and key not in BOOKKEEPING
                }
            )
            raise LogError(f"no key '{wanted}' in the log(s); logged keys include: {', '.join(available)}")
        panels.append((wanted, found))

    x_labels = {line.x_label for _, found in panels for _, line in found}
    figure, axes = plt.subplots(
        len(panels), 1, figsize=(8, 2.8 * len(panels) + 0.4), squeeze=False, sharex=len(x_labels) == 1
    )
    for ax, (wanted, found) in zip(axes[:, 0], panels):
        for name, line in found:
            label = name if line.key == wanted else f'{name}: {line.key}'
            style = dict(marker='o', markersize=4) if len(line.values) <= 30 else {}
            ax.plot(line.steps, line.values, label=label, linewidth=1.4, **style)
            print(
                f'{name}: {line.key}: {len(line.values)} points ({line.x_label} {line.steps[0]}-{line.steps[-1]}), '
                f'last {line.values[-1]:.4g}'
            )
        ax.set_ylabel(wanted)
        ax.set_xlabel(found[0][1].x_label)
        ax.xaxis.set_tick_params(labelbottom=True)
        ax.grid(alpha=0.3)
        if len(found) > 1 or legend:
            ax.legend(fontsize=8)
    figure.suptitle(title or ', '.join(names), fontsize=11)
    figure.tight_layout()
    out_dir = os.path.dirname(os.path.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    print(f'wrote {out}')


def _run_name(path: str) -> str:
    """``work_dirs/demo/20261121_111048/vis_data/scalars.json`` -> ``demo/20261121_111048``."""
    parts = os.path.normpath(os.path.abspath(path)).split(os.sep)
    if len(parts) >= 4 and parts[-2] == 'vis_data':
        return f'{parts[-4]}/{parts[-3]}'
    return os.path.basename(path)
