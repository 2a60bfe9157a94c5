"""Draw a detector's or a segmentor's predictions on images.

    python tools/demo.py data/coco_shapes/val2017 configs/demo/mask_rcnn_swin_t_shapes.py \\
        work_dirs/mask_rcnn_swin_t_shapes/iter_1200.pth --out-dir work_dirs/demo_det
    python tools/demo.py photo.jpg configs/upernet_swin_t.py upernet.pth --device cuda

The config's default_scope picks the library: MMDetection draws boxes, masks, class
names and scores (``--score-thr``); MMSegmentation draws a colour overlay with class
names (``--opacity``). One PNG per image is written to ``--out-dir``, named after the
image. Class names and colours come from the checkpoint's ``meta.dataset_meta`` (as
tools/train.py saves them), else from the config's data set. The checkpoint loads
weights-only and is checked against its checksum file; ``--trust-checkpoint`` loads a
full pickle instead (unsafe: it runs any code the file carries).
"""

from __future__ import annotations

import argparse
import os
import sys

from mmswin.engine.cli import TRUST_CHECKPOINT_HELP
from mmswin.engine.preflight import run_tool
from mmswin.errors import PreflightError

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def list_images(path: str) -> list[str]:
    """``path`` itself, or the images directly inside a folder (sorted)."""
    if os.path.isfile(path):
        return [path]
    if os.path.isdir(path):
        images = sorted(
            os.path.join(path, name)
            for name in os.listdir(path)
            if name.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(path, name))
        )
        if not images:
            raise PreflightError(f"no images in '{path}' (looked for {', '.join(IMAGE_EXTENSIONS)})")
        return images
    raise PreflightError(f"image or folder not found: '{path}'")


def output_names(images: list[str]) -> list[str]:
    """``a.jpg`` -> ``a.png``; two images with the same stem keep their extension apart."""
    stems = [os.path.splitext(os.path.basename(image))[0] for image in images]
    return [
        f'{stem}.png' if stems.count(stem) == 1 else os.path.basename(image).replace('.', '_') + '.png'
        for stem, image in zip(stems, images)
    ]


def resolve_device(requested: str) -> str:
    import torch

    if requested is None:
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if requested.startswith('cuda') and not torch.cuda.is_available():
        raise PreflightError(f'--device {requested}, but this PyTorch build sees no CUDA device; use --device cpu')
    return requested


class Predictor:
    """A model built from a config and a checkpoint, and the scope's visualizer."""

    def __init__(self, cfg, checkpoint: str, device: str, score_thr: float, opacity: float):
        from mmengine.registry import DefaultScope

        from mmswin.engine import setup_runner

        setup_runner.register_scope(cfg)
        setup_runner.adapt_to_hardware(cfg, 'none')  # SyncBN -> BN on one process
        self.scope = cfg.default_scope
        self.score_thr = score_thr
        with DefaultScope.overwrite_default_scope(self.scope):
            if self.scope == 'mmdet':
                from mmdet.apis import init_detector
                from mmdet.registry import VISUALIZERS
                from mmdet.utils import get_test_pipeline_cfg
                from mmengine.dataset import Compose

                self.model = init_detector(cfg, checkpoint, device=device)
                # The inference pipeline: the test pipeline without ground truth.
                steps = [step for step in get_test_pipeline_cfg(cfg) if 'LoadAnnotations' not in step['type']]
                self.pipeline = Compose(steps)
            else:
                from mmseg.apis import init_model
                from mmseg.registry import VISUALIZERS

                self.model = init_model(cfg, checkpoint, device=device)
            visualizer_cfg = dict(cfg.visualizer)
            visualizer_cfg.pop('vis_backends', None)  # pictures go to --out-dir, nothing else
            visualizer_cfg.update(name='mmswin_demo', save_dir=None)
            if self.scope == 'mmseg':
                visualizer_cfg['alpha'] = opacity
            self.visualizer = VISUALIZERS.build(visualizer_cfg)
        self.visualizer.dataset_meta = self.model.dataset_meta

    def predict(self, image_path: str):
        from mmengine.registry import DefaultScope

        with DefaultScope.overwrite_default_scope(self.scope):
            if self.scope == 'mmdet':
                from mmdet.apis import inference_detector

                return inference_detector(self.model, image_path, test_pipeline=self.pipeline)
            from mmseg.apis import inference_model

            return inference_model(self.model, image_path)

    def draw(self, image, result, out_file: str) -> str:
        """Write the picture; returns a short summary of what was drawn."""
        options = dict(draw_gt=False, show=False, out_file=out_file)
        if self.scope == 'mmdet':
            options['pred_score_thr'] = self.score_thr
        self.visualizer.add_datasample(os.path.basename(out_file), image, data_sample=result, **options)
        if self.scope == 'mmdet':
            kept = int((result.pred_instances.scores >= self.score_thr).sum())
            return f'{kept} object{"" if kept == 1 else "s"} scoring >= {self.score_thr:g}'
        classes = self.model.dataset_meta['classes']
        present = result.pred_sem_seg.data.unique().tolist()
        return 'classes: ' + ', '.join(classes[index] for index in present if index < len(classes))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw the predictions of a detector (boxes, masks, class names) or '
        'a segmentor (colour overlay) on an image or a folder of images'
    )
    parser.add_argument('image', metavar='IMAGE_OR_FOLDER', help='an image file, or a folder of images')
    parser.add_argument('config', help='config file, e.g. configs/demo/mask_rcnn_swin_t_shapes.py')
    parser.add_argument('checkpoint', help='checkpoint (.pth) written by tools/train.py')
    parser.add_argument('--out-dir', default='work_dirs/demo', help='where the pictures go (default: work_dirs/demo)')
    parser.add_argument(
        '--score-thr', type=float, default=0.3, help='detection: draw objects scoring at least this (default: 0.3)'
    )
    parser.add_argument('--opacity', type=float, default=0.5, help='segmentation: overlay opacity (default: 0.5)')
    parser.add_argument('--device', help='cpu, cuda or cuda:N (default: cuda when available, else cpu)')
    parser.add_argument('--trust-checkpoint', action='store_true', help=TRUST_CHECKPOINT_HELP)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    images = list_images(args.image)
    from mmswin.engine.preflight import check_checkpoint_file, check_output_folder
    from mmswin.engine.setup_runner import load_config

    cfg = load_config(args.config)
    if args.trust_checkpoint:
        from mmswin.checkpoint.io import trust_checkpoints

        trust_checkpoints()
    check_checkpoint_file(args.checkpoint, 'checkpoint', 'pass the .pth written by tools/train.py (see its work dir)')
    if not 0.0 <= args.score_thr <= 1.0:
        raise PreflightError(f'--score-thr must be in [0, 1], got {args.score_thr}')
    if not 0.0 < args.opacity <= 1.0:
        raise PreflightError(f'--opacity must be in (0, 1], got {args.opacity}')
    check_output_folder(args.out_dir, '--out-dir')
    device = resolve_device(args.device)

    import mmcv
    from mmengine.utils import ProgressBar

    from mmswin.engine.safe_loading import use_safe_loading

    use_safe_loading()
    predictor = Predictor(cfg, args.checkpoint, device, args.score_thr, args.opacity)
    os.makedirs(args.out_dir, exist_ok=True)
    bar = ProgressBar(len(images)) if len(images) > 1 else None
    summaries, unreadable = [], []
    for image_path, name in zip(images, output_names(images)):
        try:
            image = mmcv.imread(image_path, channel_order='rgb')
        except (OSError, ValueError):
            image = None
        if image is None:
            unreadable.append(image_path)
        else:
            result = predictor.predict(image_path)
            summaries.append(f'{name}: ' + predictor.draw(image, result, os.path.join(args.out_dir, name)))
        if bar is not None:
            bar.update()
    if bar is not None:
        print()
    print('\n'.join(summaries))
    for image_path in unreadable:
        print(f'warning: could not read {image_path}; skipped', file=sys.stderr)
    print(f'wrote {len(summaries)} pictures to {args.out_dir}')
    return 0 if summaries else 1


if __name__ == '__main__':
    run_tool(main)
