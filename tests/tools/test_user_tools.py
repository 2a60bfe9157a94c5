"""The user-facing tools end to end, each in a subprocess: demo pictures, window masks,
log curves, FLOPs, and the model zoo page."""

import glob
import importlib
import json
import os
import re

import cv2
import numpy as np
import pytest
import torch

from mmswin.models.layers.window_layout import MASK_VALUE, build_window_layout

from ..tools_runner import ROOT, config, run_tool

DET_DEMO = config('demo/mask_rcnn_swin_t_shapes.py')
SEG_DEMO = config('demo/upernet_swin_t_shapes.py')


def read_png(path) -> np.ndarray:
    """A written picture as RGB; fails unless the file is non-empty and decodes."""
    path = str(path)
    assert os.path.isfile(path) and os.path.getsize(path) > 0, f'{path} missing or empty'
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    assert image is not None and image.size > 0, f'{path} does not decode'
    return image[:, :, ::-1]


def save_random_checkpoint(config_path: str, path: str) -> list:
    """Build the config's model with random weights and save it as tools/train.py would
    (state dict + dataset meta, loadable with weights_only=True). Returns the classes."""
    from mmengine.registry import DefaultScope

    from mmswin.engine.setup_runner import load_config, register_scope

    cfg = load_config(config_path)
    register_scope(cfg)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = importlib.import_module(f'{cfg.default_scope}.registry').MODELS.build(cfg.model)
    classes = list(cfg.metainfo['classes'])
    meta = dict(dataset_meta=dict(classes=classes, palette=[list(colour) for colour in cfg.metainfo['palette']]))
    torch.save({'state_dict': model.state_dict(), 'meta': meta}, path)
    return classes


# --- tools/demo.py --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('task', ['detection', 'segmentation'])
def test_demo_draws_predictions_for_every_image_of_a_folder(tmp_path, task):
    from mmswin.datasets import generate_ade_shapes, generate_coco_shapes

    if task == 'detection':
        generate_coco_shapes(str(tmp_path / 'data'), num_train=2, num_val=2, size_range=(64, 90), seed=3)
        images, config_path = tmp_path / 'data' / 'val2017', DET_DEMO
    else:
        generate_ade_shapes(str(tmp_path / 'data'), num_train=2, num_val=2, size_range=(64, 90), seed=3)
        images, config_path = tmp_path / 'data' / 'images' / 'validation', SEG_DEMO
    classes = save_random_checkpoint(config_path, str(tmp_path / 'random.pth'))

    # Threshold 0: an untrained detector's scores are low, and every box must still be drawn.
    result = run_tool(
        'demo.py',
        str(images),
        config_path,
        'random.pth',
        '--out-dir',
        'pictures',
        '--score-thr',
        '0',
        '--device',
        'cpu',
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert '2/2' in result.stdout  # the progress bar over the folder

    inputs = sorted(glob.glob(str(images / '*')))
    assert len(inputs) == 2
    for source in inputs:
        stem = os.path.splitext(os.path.basename(source))[0]
        picture = read_png(tmp_path / 'pictures' / f'{stem}.png')
        original = cv2.imread(source, cv2.IMREAD_COLOR)[:, :, ::-1]
        assert picture.shape == original.shape  # drawn on the image at its own size
        changed = np.abs(picture.astype(int) - original.astype(int)).max(axis=2) > 30
        assert changed.mean() > 0.05, 'nothing visible was drawn'
    if task == 'detection':
        counts = [int(n) for n in re.findall(r': (\d+) objects? scoring', result.stdout)]
        assert len(counts) == 2 and all(count > 0 for count in counts), result.stdout
    else:
        # Class names come from the checkpoint's dataset meta.
        listed = re.findall(r'classes: (.*)', result.stdout)
        assert len(listed) == 2 and all(name in classes for line in listed for name in line.split(', '))


def test_demo_reports_a_missing_checkpoint_in_one_line(tmp_path):
    cv2.imwrite(str(tmp_path / 'picture.png'), np.zeros((8, 8, 3), np.uint8))
    result = run_tool('demo.py', 'picture.png', DET_DEMO, 'nowhere.pth', cwd=str(tmp_path))
    assert result.returncode == 2 and result.stderr.startswith("error: checkpoint not found: 'nowhere.pth'")
    assert 'Traceback' not in result.stderr and len(result.stderr.strip().splitlines()) == 1


# --- tools/analysis_tools/visualize_windows.py ----------------------------------------------------------------------


def pixel_classes(picture: np.ndarray, masks: np.ndarray, drawn: dict, prefix: str) -> np.ndarray:
    """For every (window, query, key) cell of a mask mosaic: True where the pixel at the
    cell's centre shows an allowed pair (light), False where it shows a masked one."""
    num_windows, N, _ = masks.shape
    windows_per_row = int(drawn['padded_size'][1] // drawn['window_size'])
    cell, gap = int(drawn[f'{prefix}_cell']), int(drawn[f'{prefix}_gap'])
    top, left = (int(v) for v in drawn[f'{prefix}_origin'])
    window, query, key = np.meshgrid(np.arange(num_windows), np.arange(N), np.arange(N), indexing='ij')
    row, col = np.divmod(window, windows_per_row)
    y = top + row * (N * cell + gap) + query * cell + cell // 2
    x = left + col * (N * cell + gap) + key * cell + cell // 2
    colours = picture[y, x]  # [nW, N, N, 3]
    light, dark = colours.min(-1) >= 200, colours.min(-1) < 150
    assert (light | dark).all(), 'a mask cell has neither the allowed nor a masked colour'
    return light


@pytest.mark.parametrize('size, window, mask_padding', [((10, 13), 4, True), ((14, 14), 7, False)])
def test_window_masks_drawn_are_the_backbones_cached_masks(tmp_path, size, window, mask_padding):
    args = ['--size', str(size[0]), str(size[1]), '--window', str(window), '--out', 'windows']
    result = run_tool(
        'analysis_tools/visualize_windows.py', *args, *(['--mask-padding'] if mask_padding else []), cwd=str(tmp_path)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / 'windows'
    for name in ('partition', 'shifted_partition', 'region_labels'):
        read_png(out / f'{name}.png')
    drawn = dict(np.load(out / 'masks.npz'))

    # The backbone's cached layout, as a SwinStage with this window uses it (shift = window // 2).
    layout = build_window_layout(size[0], size[1], window, window // 2, mask_padding)
    order = getattr(layout, 'shifted_window_order', None)
    order = np.arange(layout.num_windows) if order is None else order.numpy()
    expected = np.empty(tuple(layout.shifted_mask.shape), dtype=np.float32)
    expected[order] = layout.shifted_mask.numpy()  # row-major windows of the rolled grid
    np.testing.assert_array_equal(drawn['shifted_mask'], expected)
    assert set(np.unique(expected)) == {0.0, MASK_VALUE}
    np.testing.assert_array_equal(
        pixel_classes(read_png(out / 'shifted_masks.png'), expected, drawn, 'shifted'), expected == 0
    )

    windows_per_row = layout.padded_width // window
    rows, cols = np.divmod(np.arange(layout.num_windows), windows_per_row)
    masked = (expected != 0).any(axis=(1, 2))
    if not mask_padding:
        # Without padding masks, only windows that wrap around (last window row or column) are masked.
        last = (rows == rows.max()) | (cols == windows_per_row - 1)
        np.testing.assert_array_equal(masked, last)
        assert layout.regular_mask is None and not (out / 'regular_masks.png').exists()
    else:
        regular = layout.regular_mask.numpy()
        np.testing.assert_array_equal(drawn['regular_mask'], regular)
        np.testing.assert_array_equal(
            pixel_classes(read_png(out / 'regular_masks.png'), regular, drawn, 'regular'), regular == 0
        )


# --- tools/analysis_tools/analyze_logs.py ---------------------------------------------------------------------------


def write_scalars(path) -> None:
    """A training log as MMEngine writes it: train lines every 10 iterations and
    validation lines that an iteration-based run logs at step 0."""
    rng = np.random.default_rng(0)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        for iteration in range(10, 301, 10):
            loss = 3.0 * np.exp(-iteration / 100) + 0.1 * rng.random()
            f.write(json.dumps(dict(lr=1e-3, loss=loss, loss_cls=loss / 2, iter=iteration, step=iteration)) + '\n')
            if iteration % 100 == 0:
                f.write(
                    json.dumps({'coco/bbox_mAP': iteration / 1000, 'coco/segm_mAP': iteration / 1200, 'step': 0}) + '\n'
                )


def test_analyze_logs_plots_loss_and_suffix_matched_metrics(tmp_path):
    write_scalars(tmp_path / 'work' / '20250101_000000' / 'vis_data' / 'scalars.json')
    result = run_tool(
        'analysis_tools/analyze_logs.py',
        'plot_curve',
        'work',
        '--keys',
        'loss',
        'bbox_mAP',
        '--out',
        'curves.png',
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    picture = read_png(tmp_path / 'curves.png')
    assert picture.shape[0] > 400 and picture.std() > 10  # two panels with something drawn
    assert 'loss: 30 points (iteration 10-300)' in result.stdout
    # "bbox_mAP" finds "coco/bbox_mAP" (not segm_mAP); validation points go to the iteration they follow.
    assert 'coco/bbox_mAP: 3 points (iteration 100-300)' in result.stdout and 'segm' not in result.stdout


def test_analyze_logs_names_the_logged_keys_when_a_key_is_missing(tmp_path):
    write_scalars(tmp_path / 'scalars.json')
    result = run_tool(
        'analysis_tools/analyze_logs.py', 'plot_curve', 'scalars.json', '--keys', 'mIoU', cwd=str(tmp_path)
    )
    assert result.returncode == 2 and result.stderr.startswith("error: no key 'mIoU'")
    assert 'coco/bbox_mAP' in result.stderr and 'Traceback' not in result.stderr


# --- tools/analysis_tools/get_flops.py ------------------------------------------------------------------------------


def test_get_flops_reports_the_model_and_its_backbone(tmp_path):
    from mmengine.config import Config

    from mmswin.analysis.flops import count_flops
    from mmswin.models import SwinBackbone

    result = run_tool('analysis_tools/get_flops.py', DET_DEMO, '--shape', '64', '80', cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    # The detector pads to a multiple of 32, so the model sees 64x96.
    assert 'input:   1x3x64x96' in result.stdout
    rows = {
        name: (params, flops)
        for name, params, flops in re.findall(
            r'^(model|backbone)\s+([\d.]+ [KMG]?)\s+([\d.]+ [KMG]?)$', result.stdout, re.M
        )
    }
    assert set(rows) == {'model', 'backbone'}, result.stdout

    def value(text: str) -> float:
        number, unit = text.split(' ')
        return float(number) * {'K': 1e3, 'M': 1e6, 'G': 1e9, '': 1}[unit]

    # The backbone's figures equal those of the same SwinBackbone counted here.
    backbone_cfg = Config.fromfile(DET_DEMO).model.backbone.to_dict()
    backbone_cfg.pop('type')
    backbone = SwinBackbone(**backbone_cfg).eval()
    params = sum(p.numel() for p in backbone.parameters())
    flops = count_flops(backbone, torch.zeros(1, 3, 64, 96))['']
    assert value(rows['backbone'][0]) == pytest.approx(params, rel=5e-3)
    assert value(rows['backbone'][1]) == pytest.approx(flops, rel=5e-3)
    assert value(rows['model'][0]) > value(rows['backbone'][0]) and value(rows['model'][1]) > value(rows['backbone'][1])


# --- tools/misc/model_zoo.py and the docs ---------------------------------------------------------------------------


def check_model_zoo_page(*options: str) -> None:
    result = run_tool('misc/model_zoo.py', '--check', *options, cwd=ROOT, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    with open(os.path.join(ROOT, 'docs', 'model_zoo.md')) as f:
        page = f.read()
    configs = [
        os.path.relpath(path, ROOT)
        for path in glob.glob(os.path.join(ROOT, 'configs', '**', '*.py'), recursive=True)
        if '_base_' not in path
    ]
    assert configs and all(f'[`{path}`]' in page for path in configs)


def test_model_zoo_page_is_regenerated_and_matches_the_committed_one():
    # Counts of full-size models are kept while their model config and test size are unchanged.
    check_model_zoo_page('--reuse-counts')


@pytest.mark.slow
def test_model_zoo_page_matches_a_full_recount():
    check_model_zoo_page()


def test_docs_pictures_are_small_decodable_pngs():
    pictures = glob.glob(os.path.join(ROOT, 'docs', 'images', '*.png'))
    assert pictures
    for path in pictures:
        assert os.path.getsize(path) < 150 * 1024, f'{path} is over 150 KB'
        read_png(path)
