"""Checks that run before any heavy work: data sets and checkpoints that a config names.

A missing COCO folder or weight file should cost the user one line that names the
path and the fix, not a stack trace from deep inside a data loader.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, NoReturn, Optional

from mmswin.errors import CheckpointFormatError, PreflightError

if TYPE_CHECKING:  # annotations only: tools import this module before anything heavy
    from mmengine.config import Config

REMOTE_PREFIXES = ('http://', 'https://', 'torchvision://', 'open-mmlab://', 'mmcls://', 'modelzoo://', 's3://')

DATA_HINTS = {
    'mmdet': (
        'put COCO 2017 under data/coco (annotations/, train2017/, val2017/) or point {key}.dataset.data_root '
        'elsewhere with --cfg-options; to see the pipeline work first, run `make demo`'
    ),
    'mmseg': (
        'put ADE20K under data/ade/ADEChallengeData2016 (images/, annotations/) or point '
        '{key}.dataset.data_root elsewhere with --cfg-options; to see the pipeline work first, run '
        '`make demo-seg`'
    ),
}


def run_tool(main: Callable[[], Optional[int]], also: Optional[Mapping[type, int]] = None) -> NoReturn:
    """Run a command-line tool's ``main()`` and exit with what it returns.

    A :class:`PreflightError` is printed as one ``error: ...`` line on stderr, with no
    traceback, and exits with code 2; ``also`` maps further exception types to their own
    exit codes (checked after PreflightError, in order). Every tool in tools/ ends with
    this, so they all report user errors the same way instead of each repeating the
    try/except.
    """
    errors = {PreflightError: 2, **(also or {})}
    try:
        code = main()
    except tuple(errors) as error:
        print(f'error: {error}', file=sys.stderr)
        _exit(next(exit_code for kind, exit_code in errors.items() if isinstance(error, kind)))
    _exit(code)


def _exit(code: Optional[int]) -> NoReturn:
    """Exit with ``code``; after a distributed run, without the interpreter's teardown.

    A finished rank can abort in its teardown (``terminate called without an active
    exception``, SIGABRT) with its training, checkpoint and validation complete, which
    fails the job; shutting the process group down first does not prevent it. So a rank
    runs the atexit handlers (logging's flush among them), flushes its output and leaves
    with ``os._exit``: no module teardown, no C++ destructors, nothing left to race gloo's
    threads.
    """
    distributed = sys.modules.get('torch.distributed')
    if distributed is None or not distributed.is_available() or not distributed.is_initialized():
        sys.exit(code)
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def check_output_file(path: str, what: str, example: str) -> None:
    """An output file must be writable where it is asked for, checked before the work whose
    result it will hold: not a directory, and in a folder that exists or can be made by
    this user. ``what`` names the argument, ``example`` a file name for the hint. Nothing
    is created here."""
    if os.path.isdir(path):
        raise PreflightError(f"{what} '{path}' is a directory; give a file path, e.g. '{os.path.join(path, example)}'")
    _check_can_make(os.path.dirname(os.path.abspath(path)), what, path)


def check_output_folder(path: str, what: str) -> None:
    """An output folder (a work dir, a folder of pictures) must be a folder, or one this user
    can make, before the work that fills it. Nothing is created here."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise PreflightError(f"{what} '{path}' is a file, not a folder; choose another path")
    _check_can_make(os.path.abspath(path), what, path)


def _check_can_make(folder: str, what: str, path: str) -> None:
    """``folder`` exists and is writable, or its nearest existing parent is a writable folder."""
    existing = folder
    while not os.path.isdir(existing):  # the part of the folder that exists already
        if os.path.exists(existing):
            raise PreflightError(f"{what} '{path}': '{existing}' is a file, not a folder; choose another path")
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PreflightError(
            f"{what} '{path}': cannot write into '{existing}' (permission denied); choose another path"
        )


def invalid_json_error(path: str, line: int, column: int, reason: str) -> PreflightError:
    return PreflightError(
        f"annotation file '{path}' is not valid JSON: line {line} column {column}: {reason}; "
        'fix the file or download it again'
    )


def _line_and_column(path: str, offset: int) -> tuple[int, int]:
    """1-based line and column of byte ``offset`` (read in chunks: COCO files are large)."""
    line, line_start, position = 1, 0, 0
    with open(path, 'rb') as f:
        while position < offset:
            chunk = f.read(min(1 << 20, offset - position))
            if not chunk:
                break
            newlines = chunk.count(b'\n')
            if newlines:
                line += newlines
                line_start = position + chunk.rfind(b'\n') + 1
            position += len(chunk)
    return line, offset - line_start + 1


def check_json_file(path: str) -> None:
    """Raise :class:`PreflightError` if a JSON file is empty, starts with something other than
    ``{`` or ``[`` (an HTML error page, a Git LFS pointer), or stops before its closing bracket
    (a cut-off download). Reads only the two ends; an error inside the file is reported by
    the data set when it parses the file."""
    size = os.path.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(4096)
        f.seek(max(0, size - 4096))
        tail = f.read()
    body = head.lstrip()
    if not body:
        raise invalid_json_error(path, 1, 1, 'the file is empty')
    if body[:1] not in (b'{', b'['):
        line, column = _line_and_column(path, len(head) - len(body))
        raise invalid_json_error(path, line, column, f"expected '{{' but the file starts with {body[:24]!r}")
    closing = b'}' if body[:1] == b'{' else b']'
    if not tail.rstrip().endswith(closing):
        line, column = _line_and_column(path, size - (len(tail) - len(tail.rstrip())))
        raise invalid_json_error(
            path, line, column, f"the file ends before its closing '{closing.decode()}' (cut off while copying?)"
        )


def _datasets(dataset: dict) -> Iterator[dict]:
    """The leaf dataset configs inside wrappers such as RepeatDataset or ConcatDataset."""
    if not isinstance(dataset, dict):
        return
    if 'dataset' in dataset:
        yield from _datasets(dataset['dataset'])
    elif 'datasets' in dataset:
        for child in dataset['datasets']:
            yield from _datasets(child)
    else:
        yield dataset


def check_datasets(cfg: Config, loader_keys: tuple[str, ...]) -> None:
    """Raise :class:`PreflightError` if a loader's batch size or worker count is not a
    count, an annotation file or image folder is missing, or a JSON annotation file is
    visibly broken (see :func:`check_json_file`)."""
    hint = DATA_HINTS.get(cfg.get('default_scope'), 'check the data_root in the config')
    for key in loader_keys:
        loader = cfg.get(key)
        if not loader:
            continue
        for field, minimum in (('batch_size', 1), ('num_workers', 0)):
            value = loader.get(field, minimum)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise PreflightError(
                    f'{key}.{field} must be an integer >= {minimum}, got {value!r}; '
                    f'set it with --cfg-options {key}.{field}=N'
                )
        for dataset in _datasets(loader.get('dataset')):
            root = dataset.get('data_root') or ''
            expected = []
            if dataset.get('ann_file'):
                expected.append(('annotation file', dataset['ann_file']))
            for name, prefix in (dataset.get('data_prefix') or {}).items():
                if prefix:
                    expected.append((f'{name} folder', prefix))
            for what, relative in expected:
                path = os.path.join(root, relative)
                if not os.path.exists(path):
                    raise PreflightError(
                        f"data set not found: {key} expects the {what} '{path}'; " + hint.format(key=key)
                    )
                if what == 'annotation file' and path.endswith('.json'):
                    check_json_file(path)


def _pretrained_checkpoints(node, path: str = 'model') -> Iterator[tuple[str, str]]:
    """(config path, checkpoint) for every ``init_cfg=dict(type='Pretrained', ...)`` in the model."""
    if isinstance(node, dict):
        init_cfg = node.get('init_cfg')
        for init in init_cfg if isinstance(init_cfg, list) else [init_cfg]:
            if isinstance(init, dict) and init.get('type') == 'Pretrained' and init.get('checkpoint'):
                yield f'{path}.init_cfg.checkpoint', init['checkpoint']
        for key, value in node.items():
            if key != 'init_cfg':
                yield from _pretrained_checkpoints(value, f'{path}.{key}')


def check_checkpoint_file(path: str, what: str, fix: str) -> None:
    """A local checkpoint must be a complete PyTorch file that the safe loader accepts and
    that matches its checksum file (see ``mmswin.checkpoint.io.verify_checkpoint_file``)."""
    if not isinstance(path, str) or path.startswith(REMOTE_PREFIXES):
        return
    if os.path.isdir(path):
        raise PreflightError(f"{what} '{path}' is a directory, not a checkpoint file; {fix}")
    if not os.path.isfile(path):  # answered before mmswin.checkpoint brings torch in
        raise PreflightError(f"{what} not found: '{path}'; {fix}")
    from mmswin.checkpoint.io import verify_checkpoint_file

    try:
        verify_checkpoint_file(path)
    except CheckpointFormatError as error:
        raise PreflightError(f'{what}: {error}') from None


def check_checkpoints(cfg: Config) -> None:
    """Raise :class:`PreflightError` if ``load_from`` or a pretrained backbone file is missing."""
    if cfg.get('load_from') and not cfg.get('resume'):
        check_checkpoint_file(
            cfg.load_from, 'checkpoint (load_from)', 'fix the path or drop it with --cfg-options load_from=None'
        )
    for config_path, checkpoint in _pretrained_checkpoints(cfg.get('model', {})):
        check_checkpoint_file(
            checkpoint,
            f'pretrained checkpoint ({config_path})',
            f'download the weights there, pass --cfg-options {config_path}=PATH, or train from scratch with '
            f'--cfg-options {config_path.rsplit(".", 1)[0]}=None; to try the pipeline first, run `make demo`',
        )
