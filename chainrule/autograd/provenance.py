"""Where untracked tensors came from, for explanations only.

Operations without a gradient (comparisons, argmax/argmin, sort indices, casts to integers, logic) record
no node, as in PyTorch, so the graph alone cannot tell that ``(w > 0).float() * v`` or ``v[w.argmax()]``
depends on ``w``. When grad mode is on and such an operation reads a tensor in the graph, its result
remembers the operation and (weakly) the inputs it came from; untracked operations on remembered tensors
pass the memory on (``mask.float()``), and an indexing op's node remembers the tensors it was indexed
with. :func:`chainrule.diagnostics.explain_grad` follows these notes to say "connected only through 'gt',
which has no gradient". Nothing is noted under ``no_grad()`` or when no input is in a graph or noted;
notes die with their tensors and nodes, and never keep a graph alive: so when the compared tensor and its
node are gone (``mask = (w * 2) > 0`` keeps nothing of ``w * 2``), the trail ends there.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from chainrule.autograd.grad_mode import GRAD_ENABLED
from chainrule.autograd.graph import RECORD_OBSERVERS

__all__ = ["Origin", "note_origin", "origin_of", "ORIGINS"]


@dataclass(frozen=True)
class Origin:
    """``op`` made the tensor from ``sources``: weak references to tensors or nodes of the graph, or the
    ``Origin`` of an untracked input (kept, so the chain outlives the temporaries along it)."""

    op: str
    sources: tuple
    depth: int = 1  # untracked ops since the graph: trails are cut at _MAX_DEPTH

    def live_sources(self) -> list:
        """The sources that still exist: tensors, nodes and Origins."""
        return [s if isinstance(s, Origin) else s() for s in self.sources
                if isinstance(s, Origin) or s() is not None]


# id(tensor or node) -> (weak reference to it, its Origin)
ORIGINS: dict[int, tuple] = {}
# A tensor updated by untracked ops step after step (a running metric fed by comparisons) would otherwise
# grow an endless chain of Origins; explanations need only the last few links.
_MAX_DEPTH = 16


def note_origin(result, op: str, inputs) -> None:
    """Remember that ``result`` (a tensor, or the node of a tracked result) came from ``inputs`` through
    ``op``, if grad mode is on and one of the inputs is in the graph or noted itself."""
    if not GRAD_ENABLED[0]:
        return
    sources = tuple(source for source in map(_source, inputs) if source is not None)
    if not sources:
        return
    depth = 1 + max((s.depth for s in sources if isinstance(s, Origin)), default=0)
    if depth > _MAX_DEPTH:
        return
    key = id(result)
    ORIGINS[key] = (weakref.ref(result, lambda _, key=key: _forget(key)), Origin(op, sources, depth))
    if _pass_on not in RECORD_OBSERVERS:
        RECORD_OBSERVERS.append(_pass_on)


def _forget(key: int) -> None:
    ORIGINS.pop(key, None)
    if not ORIGINS and _pass_on in RECORD_OBSERVERS:
        RECORD_OBSERVERS.remove(_pass_on)


def _pass_on(result, op: str, inputs) -> None:
    """Observes ``record`` while some tensor has a noted origin: an untracked result made from a noted
    tensor (``mask.float()``) is noted in turn."""
    if result._node is None:
        note_origin(result, op, inputs)


def origin_of(obj) -> Origin | None:
    """The Origin noted for a tensor or node, or None."""
    entry = ORIGINS.get(id(obj))
    return entry[1] if entry is not None and entry[0]() is obj else None


def _source(t):
    noted = origin_of(t)
    if noted is not None:
        return noted
    if not getattr(t, "_rg", False):
        return None
    # a tensor in the middle of the graph may die while its node lives on: refer to the node then
    return weakref.ref(t._node if t._node is not None else t)
