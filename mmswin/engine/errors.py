"""Errors the tools turn into exit codes; light to import (no torch)."""


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""
