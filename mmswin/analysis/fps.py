"""Images per second of a config's whole model over its own test data loader.

The MMDetection / MMSegmentation ``benchmark.py`` measurement: after ``num_warmup``
untimed iterations, ``max_iter`` timed ones (or as many as the data set holds), one
``task`` each:

* ``'inference'``: ``model.test_step(batch)`` (data preprocessor, forward, post-processing),
  the batch read beforehand and not timed;
* ``'dataloader'``: fetching the next batch from the test data loader (workers, collate);
* ``'dataset'``: ``dataset[i]`` alone (reading and the test pipeline), in the main process.

The three split a test run's time: what the model costs, what feeding it costs, and how
much of that the loader's workers hide.
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

from mmswin.errors import PreflightError

TASKS = ('inference', 'dataloader', 'dataset')


@dataclass
class FpsRun:
    """One timed run: ``images`` processed in ``seconds`` (warm-up excluded)."""

    task: str
    images: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.images / self.seconds

    @property
    def ms_per_image(self) -> float:
        return 1e3 * self.seconds / self.images


def check_fps_settings(task: str, max_iter: int, log_interval: int, num_warmup: int, repeat_num: int) -> None:
    """Raise a one-line :class:`PreflightError` naming the flag, before anything is built."""
    if task not in TASKS:
        raise PreflightError(f'--task must be one of {TASKS}, got {task!r}')
    for flag, value, minimum in (
        ('--max-iter', max_iter, 1),
        ('--log-interval', log_interval, 1),
        ('--num-warmup', num_warmup, 0),
        ('--repeat-num', repeat_num, 1),
    ):
        if value < minimum:
            raise PreflightError(f'{flag} must be at least {minimum}, got {value}')


def prepare_config(config: str, cfg_options: Optional[dict] = None, checkpoint: Optional[str] = None):
    """The config, checked as ``tools/test.py`` checks it: scope registered, model
    arguments checked, the demo data generated where the config describes it, the test
    data set present, SyncBN turned BN; the checkpoint (if any) checked."""
    from mmswin.datasets import ensure_demo_data
    from mmswin.engine import setup_runner
    from mmswin.engine.config_checks import check_model_config
    from mmswin.engine.preflight import check_checkpoint_file, check_datasets

    if checkpoint:
        check_checkpoint_file(checkpoint, 'checkpoint', 'pass the .pth written by tools/train.py (see its work dir)')
    cfg = setup_runner.load_config(config, cfg_options)
    setup_runner.register_scope(cfg)
    check_model_config(cfg)
    ensure_demo_data(cfg)
    check_datasets(cfg, ('test_dataloader',))
    setup_runner.adapt_to_hardware(cfg, 'none')
    return cfg


def build_test_loader(cfg):
    """The config's test data loader, built as MMEngine's Runner builds it (seed 0)."""
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        return Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader), seed=0)


def build_test_model(cfg, checkpoint: Optional[str], device: str):
    """The config's model in eval mode on ``device``: random weights (seeded) or the
    checkpoint's, read by the weights-only loader."""
    from mmengine.runner import load_checkpoint

    from mmswin.engine.safe_loading import use_safe_loading

    from .complexity import build_model

    model = build_model(cfg)
    if checkpoint:
        use_safe_loading()
        load_checkpoint(model, checkpoint, map_location='cpu')
    model = model.to(device)
    model.eval()
    return model


def timed_steps(
    task: str,
    step: Callable[[], tuple[int, float]],
    max_iter: int,
    num_warmup: int,
    log_interval: int,
    log: Callable[[str], None],
    available: Optional[int] = None,
) -> FpsRun:
    """Call ``step`` (returns the images it processed and the seconds its timed part
    took; raises StopIteration when the data ends) ``num_warmup`` times, then up to
    ``max_iter`` times counted; ``log`` gets a line every ``log_interval`` counted steps."""
    for _ in range(num_warmup):
        step()
    images, seconds = 0, 0.0
    total = max_iter if available is None else min(max_iter, max(0, available - num_warmup))
    for index in range(1, total + 1):
        try:
            step_images, step_seconds = step()
        except StopIteration:
            break
        images, seconds = images + step_images, seconds + step_seconds
        if index % log_interval == 0:
            log(f'[{task}] done {index}/{total}: {images / seconds:.2f} img/s, {1e3 * seconds / images:.1f} ms/img')
    if images == 0:
        raise PreflightError(
            f'the test data set holds no image after the {num_warmup} warm-up iterations; lower --num-warmup'
        )
    return FpsRun(task, images, seconds)


def _batch_images(batch) -> int:
    inputs = batch['inputs'] if isinstance(batch, dict) else batch
    return len(inputs) if isinstance(inputs, (list, tuple)) else int(getattr(inputs, 'shape', [1])[0])


def _timed(fetch: Callable[[], object]) -> Callable[[], tuple[int, float]]:
    """A step that times ``fetch()`` whole."""

    def step() -> tuple[int, float]:
        start = time.perf_counter()
        batch = fetch()
        return _batch_images(batch), time.perf_counter() - start

    return step


def fps_steps(cfg, task: str, checkpoint: Optional[str], device: str) -> tuple[Callable, int]:
    """The step :func:`timed_steps` calls for ``task``, and how many steps the data holds."""
    import torch

    loader = build_test_loader(cfg)
    if task == 'dataset':
        indices: Iterator[int] = iter(range(len(loader.dataset)))
        return _timed(lambda: [loader.dataset[next(indices)]]), len(loader.dataset)
    batches = iter(loader)
    if task == 'dataloader':
        return _timed(lambda: next(batches)), len(loader)
    model = build_test_model(cfg, checkpoint, device)

    def infer() -> tuple[int, float]:
        batch = next(batches)  # read before the clock starts
        start = time.perf_counter()
        with torch.no_grad():
            model.test_step(batch)
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        return _batch_images(batch), time.perf_counter() - start

    return infer, len(loader)


def benchmark_config(
    config: str,
    checkpoint: Optional[str] = None,
    task: str = 'inference',
    max_iter: int = 2000,
    log_interval: int = 50,
    num_warmup: int = 5,
    repeat_num: int = 1,
    cfg_options: Optional[dict] = None,
    device: str = 'cpu',
) -> list[FpsRun]:
    """Time ``task`` over ``config``'s test data ``repeat_num`` times; prints each run's
    fps and ms per image, and the mean and spread over the runs."""
    from mmengine.logging import print_log

    check_fps_settings(task, max_iter, log_interval, num_warmup, repeat_num)
    cfg = prepare_config(config, cfg_options, checkpoint)

    def log(message: str) -> None:
        print_log(message, logger='current')

    runs = []
    for repeat in range(1, repeat_num + 1):
        step, available = fps_steps(cfg, task, checkpoint, device)
        run = timed_steps(task, step, max_iter, num_warmup, log_interval, log, available)
        runs.append(run)
        print(
            f'run {repeat}/{repeat_num}, {task}: {run.images} images in {run.seconds:.2f} s: '
            f'{run.fps:.2f} img/s, {run.ms_per_image:.1f} ms/img',
            flush=True,
        )
    if repeat_num > 1:
        fps = [run.fps for run in runs]
        print(f'{task} over {repeat_num} runs: {statistics.mean(fps):.2f} img/s (spread {max(fps) - min(fps):.2f})')
    return runs
