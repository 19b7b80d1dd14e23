"""The one error type of ``chainrule.io``."""

from __future__ import annotations

__all__ = ["CheckpointError"]


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read (truncated, corrupted, not safetensors, written by a newer
    chainrule) or that does not fit what it is restored into. The message names the file and what is wrong.

    It is a ``RuntimeError``, like the errors of PyTorch's ``load_state_dict``, so code written for
    PyTorch that catches those keeps working.
    """
