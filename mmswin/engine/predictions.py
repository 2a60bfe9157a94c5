"""``tools/test.py --out``: predictions written whole, after the metrics are printed.

MMEngine's ``DumpResults`` writes the file in the middle of evaluation: a full disk there
leaves a half-written (often 0-byte) file and aborts the evaluation before the metrics
are reported. Here the predictions are kept until the metrics are out, then written
through :func:`mmswin.atomic.atomic_file`.
"""

from __future__ import annotations

from mmengine.evaluator import DumpResults

from mmswin.atomic import atomic_file
from mmswin.errors import PredictionsNotWrittenError


class PredictionCollector(DumpResults):
    """``DumpResults`` that keeps the predictions (gathered from every rank, on rank 0)
    in :attr:`predictions` instead of writing them during evaluation."""

    def __init__(self, out_file_path: str, **kwargs):
        super().__init__(out_file_path, **kwargs)
        self.predictions: list | None = None

    def compute_metrics(self, results: list) -> dict:
        self.predictions = results
        return {}


def write_predictions(collector: PredictionCollector) -> str | None:
    """Pickle the collected predictions to ``collector.out_file_path`` at once (a failed
    write leaves the old file or none); returns the path, or None where this rank holds
    no predictions (ranks other than 0).

    Raises:
        PredictionsNotWrittenError: the write failed (full disk, no permission); the
            message names the path and the reason.
    """
    from mmengine.fileio import dump

    if collector.predictions is None:
        return None
    path = collector.out_file_path
    try:
        with atomic_file(path) as partial:
            dump(collector.predictions, partial, file_format='pkl')
    except OSError as error:
        raise PredictionsNotWrittenError(
            f"--out '{path}': writing the predictions failed ({error.strerror or error}); nothing was written "
            'there (the metrics above are complete); free space or choose another path'
        ) from None
    return path
