"""``torch.utils``'s import paths over chainrule's own modules, so ``from chainrule.utils.data import
DataLoader`` (a program that only changed ``torch`` to ``chainrule``) finds chainrule.data's classes.

``data``: :mod:`chainrule.data` re-exported. ``checkpoint``: activation checkpointing. ``dlpack``: ``to_dlpack``
and ``from_dlpack`` with capsules.
"""

from chainrule.utils import checkpoint, data, dlpack

__all__ = ["data", "checkpoint", "dlpack"]
