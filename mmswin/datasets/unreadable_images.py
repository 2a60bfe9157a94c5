"""Samples whose image (or label map) file cannot be read: skipped in training, named in evaluation.

A broken file in a data set of 100k images should cost one warning, not a days-long run
ending in a stack trace from a DataLoader worker. The stock pipelines stay as they are
(MMDetection's and MMSegmentation's inferencers look their transforms up by name); when
a pipeline fails, the sample's files are diagnosed, and only a file problem is handled
here. Any other error is raised as it was.
"""

from __future__ import annotations

import logging
from typing import Optional

import mmcv
import numpy as np
import torch
from mmengine import fileio
from mmengine.logging import print_log

from mmswin.errors import UnreadableImageError

FILE_KEYS = (('img_path', 'image'), ('seg_map_path', 'label map'))


def shared_flags(length: int) -> torch.Tensor:
    """One flag per sample in shared memory: DataLoader workers forked after this see (and set)
    the same flags, so each file is reported once per run, not once per worker."""
    return torch.zeros(length, dtype=torch.bool).share_memory_()


def _cut_off(data: bytes) -> Optional[str]:
    if data[:2] == b'\xff\xd8' and data.rfind(b'\xff\xd9') < data.rfind(b'\xff\xda'):
        return 'JPEG'  # no end-of-image marker after the last scan
    if data[:8] == b'\x89PNG\r\n\x1a\n' and b'IEND' not in data[-16:]:
        return 'PNG'
    return None


def image_file_problem(path: str, backend_args: Optional[dict] = None) -> Optional[str]:
    """Why the image file at ``path`` cannot be used, or None if it decodes."""
    try:
        data = fileio.get(path, backend_args=backend_args)
    except OSError as error:
        return (error.strerror or str(error)).lower()
    if not data:
        return 'empty file (0 bytes)'
    try:
        decoded = mmcv.imfrombytes(data, flag='unchanged')
    except Exception:  # decoders reject bad bytes with many exception types (cv2.error, OSError, ...)
        decoded = None
    if decoded is not None and decoded.size:
        return None
    cut_off = _cut_off(data)
    if cut_off:
        return f'truncated {cut_off} ({len(data)} bytes; a partial copy or download?)'
    return f'not a readable image (it starts with {data[:16]!r})'


class SkipUnreadableImages:
    """Mixin for an MMEngine ``BaseDataset``: a training sample whose image or label map file
    cannot be read is skipped with one warning naming the file, and MMEngine's refetch
    (``max_refetch``) draws another sample instead.

    More than ``max_unreadable`` such samples (or all of them) means a damaged copy of the
    data set, not a few bad files: that stops the run with an error naming examples. In
    ``test_mode`` nothing is skipped (a metric over fewer images is not comparable): the
    first unreadable file stops the run with its name and the fix.
    """

    def __init__(self, *args, max_unreadable: int = 100, **kwargs):
        self.max_unreadable = max_unreadable
        super().__init__(*args, **kwargs)

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        super().full_init()
        self.unreadable = shared_flags(len(self))

    def _file_problems(self, idx: int) -> list[tuple[str, str, str]]:
        """(what, path, reason) for each of the sample's files that cannot be read."""
        info = self.get_data_info(idx)
        backend_args = getattr(self, 'backend_args', None)
        problems = []
        for key, what in FILE_KEYS:
            if info.get(key):
                reason = image_file_problem(info[key], backend_args)
                if reason:
                    problems.append((what, info[key], reason))
        return problems

    def _describe(self, idx: int, problems: list[tuple[str, str, str]]) -> str:
        image_id = self.get_data_info(idx).get('img_id')
        sample = f' (image id {image_id})' if image_id is not None else ''
        return '; '.join(f"{what} '{path}'{sample}: {reason}" for what, path, reason in problems)

    def prepare_data(self, idx: int):
        if self.unreadable[idx]:
            return None  # reported when it was first found
        try:
            return super().prepare_data(idx)
        except Exception:
            problems = self._file_problems(idx)
            if not problems:
                raise  # not a file problem: a bug or a config error, raised as it was
        description = self._describe(idx, problems)
        if self.test_mode:
            raise UnreadableImageError(
                f'cannot read {description}; evaluation needs every sample: replace the file, '
                'or remove the sample from the data set'
            )
        self.unreadable[idx] = True
        print_log(
            f'skipping a sample whose file cannot be read: {description}', logger='current', level=logging.WARNING
        )
        count = int(self.unreadable.sum())
        if count > self.max_unreadable or count == len(self):
            raise UnreadableImageError(self._too_many_message(count))
        return None

    def _too_many_message(self, count: int) -> str:
        flagged = np.flatnonzero(self.unreadable.numpy())
        examples = ', '.join(f"'{self.get_data_info(int(i))['img_path']}'" for i in flagged[:3])
        source = getattr(self, 'ann_file', '') or self.data_root
        return (
            f'{count} of {len(self)} samples of {source} have files that cannot be read (e.g. {examples}; '
            'the warnings above give each reason): the copy of the data set looks damaged; copy or '
            f'download it again, or allow more with dataset.max_unreadable (now {self.max_unreadable})'
        )
