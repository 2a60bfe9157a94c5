"""The two ways a checkpoint can fail to load, each with a message that names the fix."""


class CheckpointFormatError(RuntimeError):
    """The file or dict is not a Swin checkpoint in a known layout (unreadable, truncated,
    no tensors, another model family, or Swin weights under an unknown prefix)."""


class CheckpointMismatchError(RuntimeError):
    """The checkpoint is a Swin checkpoint, but for another architecture: a tensor has the
    wrong shape, or blocks/stages are missing or extra. Raised before anything is copied,
    so the model never ends up partially loaded."""
