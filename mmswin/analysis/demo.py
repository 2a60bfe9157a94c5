""":func:`draw_predictions`: the config's default_scope picks the library: MMDetection draws boxes, masks, class
names and scores (``--score-thr``); MMSegmentation draws a colour overlay with class
names (``--opacity``). One PNG per image is written to ``--out-dir``, named after the
image. Class names and colours come from the checkpoint's ``meta.dataset_meta`` (as
tools/train.py saves them), else from the config's data set. The checkpoint loads
weights-only and is checked against its checksum file; ``--trust-checkpoint`` loads a
full pickle instead (unsafe: it runs any code the file carries).
"""

from __future__ import annotations

import os
import sys
from typing import Optional

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


def draw_predictions(
    image: str,
    config: str,
    checkpoint: str,
    out_dir: str = 'work_dirs/demo',
    score_thr: float = 0.3,
    opacity: float = 0.5,
    device: Optional[str] = None,
    trust_checkpoint: bool = False,
) -> int:
    """Draw the predictions of ``config``'s model with ``checkpoint`` on ``image`` (a file
    or a folder of images) into ``out_dir``, one PNG per image; bad arguments are a
    :class:`PreflightError` before the model is built. Returns 0, or 1 if no image could
    be read."""
    images = list_images(image)
    from mmswin.engine.preflight import check_checkpoint_file, check_output_folder
    from mmswin.engine.setup_runner import load_config

    cfg = load_config(config)
    if trust_checkpoint:
        from mmswin.checkpoint.io import trust_checkpoints

        trust_checkpoints()
    check_checkpoint_file(checkpoint, 'checkpoint', 'pass the .pth written by tools/train.py (see its work dir)')
    if not 0.0 <= score_thr <= 1.0:
        raise PreflightError(f'--score-thr must be in [0, 1], got {score_thr}')
    if not 0.0 < opacity <= 1.0:
        raise PreflightError(f'--opacity must be in (0, 1], got {opacity}')
    check_output_folder(out_dir, '--out-dir')
    device = resolve_device(device)

    import mmcv
    from mmengine.utils import ProgressBar

    from mmswin.engine.safe_loading import use_safe_loading

    use_safe_loading()
    predictor = Predictor(cfg, checkpoint, device, score_thr, opacity)
    os.makedirs(out_dir, exist_ok=True)
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
            summaries.append(f'{name}: ' + predictor.draw(image, result, os.path.join(out_dir, name)))
        if bar is not None:
            bar.update()
    if bar is not None:
        print()
    print('\n'.join(summaries))
    for image_path in unreadable:
        print(f'warning: could not read {image_path}; skipped', file=sys.stderr)
    print(f'wrote {len(summaries)} pictures to {out_dir}')
    return 0 if summaries else 1
