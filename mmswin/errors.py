"""Every error type mmswin raises on purpose, in one module that imports nothing heavy.

:class:`PreflightError` and its subclasses are problems with the user's files, config
or command line: the tools print them as one ``error: ...`` line that names the fix
(:func:`mmswin.engine.preflight.run_tool`). The others are raised by the library and
say the same in their message.
"""

from __future__ import annotations

__all__ = [
    'BadDataError',
    'CheckpointDigestError',
    'CheckpointFileError',
    'CheckpointFormatError',
    'CheckpointMismatchError',
    'CocoSchemaError',
    'LogError',
    'NonFiniteLossError',
    'PredictionsNotWrittenError',
    'PreflightError',
    'UnreadableImageError',
    'WorkDirInUseError',
]


class PreflightError(Exception):
    """A problem with the user's files or config, with a message that says the fix."""

    def __str__(self) -> str:
        message = super().__str__()
        # A DataLoader worker's error is raised again in the main process with the
        # worker's traceback as its message; the user's line is the traceback's last.
        if 'Original Traceback' in message:
            return message.rstrip().splitlines()[-1].split(': ', 1)[-1]
        return message


class BadDataError(PreflightError):
    """A bad file in the data set, found while reading it (in training or evaluation)."""


class UnreadableImageError(BadDataError):
    """An image or label map file that is missing, empty, cut off or not an image."""


class WorkDirInUseError(PreflightError):
    """Another live run holds the work dir."""


class PredictionsNotWrittenError(PreflightError):
    """The predictions could not be written; nothing was left at the path."""


class CheckpointFileError(PreflightError):
    """A checkpoint that cannot be loaded: missing, damaged, not a checkpoint, or refused
    by the safe loader; the message names the file and the fix."""


class LogError(PreflightError):
    """A missing or unreadable training log, or a key it does not hold."""


class CocoSchemaError(ValueError):
    """Valid JSON that is not a COCO instances file; the message says what is missing."""


class CheckpointFormatError(RuntimeError):
    """The file or dict is not a Swin checkpoint in a known layout (unreadable, truncated,
    no tensors, another model family, or Swin weights under an unknown prefix)."""


class CheckpointDigestError(CheckpointFormatError):
    """A checkpoint's bytes differ from the checksum saved beside it."""


class CheckpointMismatchError(RuntimeError):
    """The checkpoint is a Swin checkpoint, but for another architecture: a tensor has the
    wrong shape, or blocks/stages are missing or extra. Raised before anything is copied,
    so the model never ends up partially loaded."""


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""
