"""What ``measure_all`` (docs/deployment.md's table) exports, without exporting: the models,
the parts, the sizes and the row names the table has."""

import os

from torch import nn

from mmswin.deployment import measure
from tests.tools_runner import ROOT


def test_every_whole_model_is_measured_with_its_part_sizes_and_table_name(monkeypatch, tmp_path):
    built, measured = [], []
    monkeypatch.setattr(measure, 'perturbed', lambda module, seed=0: module)
    monkeypatch.setattr(measure, 'measure_low_precision', lambda *args, **kwargs: [])

    def fake_config_part(path, part):
        built.append((path, part))
        return nn.Identity(), ['out']

    def fake_measure_module(what, module, example_size, sizes, folder, output_names=None, log=print):
        measured.append((what, example_size, sizes, output_names))
        return [measure.Row(what, 'fp32', '-')]

    monkeypatch.setattr(measure, 'config_part', fake_config_part)
    monkeypatch.setattr(measure, 'measure_module', fake_measure_module)
    rows = measure.measure_all(str(tmp_path), quick=False, log=lambda line: None)

    assert built == [('configs/upernet_swin_t.py', 'model'), ('configs/mask_rcnn_swin_t.py', 'features')]
    whole = measured[2:]  # after the V1 and V2 backbones
    assert [(what, sizes, names) for what, _, sizes, names in whole] == [
        ('UperNet Swin-T (configs/upernet_swin_t.py), image -> logits', measure.MODEL_SIZES, ['out']),
        ('Mask R-CNN Swin-T (configs/mask_rcnn_swin_t.py), FPN + RPN outputs', measure.DETECTOR_SIZES, ['out']),
    ]
    assert all(example_size == (2, 229, 311) for _, example_size, _, _ in measured)
    assert [row.what for row in rows] == [what for what, *_ in measured]
    with open(os.path.join(ROOT, 'docs', 'deployment.md'), encoding='utf-8') as f:
        table = f.read()
    for what, *_ in whole:
        assert f'| {what} |' in table
