"""The state epoch (``chainrule.tensor.STATE_EPOCH``) is what lets a compiled call skip its per-tensor
checks: every change to a tensor's gradient, requires_grad or array must bump it. Writes through the
public API (``.grad =``, ``requires_grad_``, ``.data =``, ``_swap_data``) do; this test finds the places
in the library that write the private slots of an existing tensor directly, so that a new one is made
only with its bump in mind (or goes through ``_swap_data``)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import chainrule
import chainrule.nn as nn
from chainrule.tensor import STATE_EPOCH

PACKAGE = Path(chainrule.__file__).parent
ASSIGNMENT = re.compile(r"^([^=(]*?)\s=\s")  # the targets of a plain assignment (not ==, <=, keyword=)
SLOT = re.compile(r"\.(_grad|_rg|_data)\b(?![\[.])")  # the slot itself, not an element written in place

# file -> Counter of the private slots written there, each write checked to bump STATE_EPOCH (or to be
# on a tensor being made). chainrule/compiler swaps arrays while capturing and replaying on purpose.
KNOWN = {
    "tensor.py": Counter({"_data": 3, "_grad": 3, "_rg": 4}),  # __init__, wrap, the setters (bump)
    "autograd/engine.py": Counter({"_grad": 3}),  # _accumulate; backward() bumps once
    "nn/module.py": Counter({"_grad": 1}),  # zero_grad bumps once
    "optim/optimizer.py": Counter({"_grad": 1, "_rg": 1}),  # zero_grad bumps once
    "ops/inplace.py": Counter({"_rg": 3}),  # each followed by a bump
}


def _writes() -> dict:
    found: dict = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith("compiler/"):
            continue
        counts = Counter()
        for line in path.read_text().splitlines():
            assignment = ASSIGNMENT.match(line.split("#")[0])
            if assignment:
                counts.update(SLOT.findall(assignment.group(1)))
        if counts:
            found[relative] = counts
    return found


def test_direct_writes_of_a_tensors_gradient_requires_grad_or_array_are_the_known_ones():
    assert _writes() == KNOWN, (
        "a write of a tensor's _grad, _rg or _data appeared or went away outside the known places: a change "
        "to an existing tensor must bump chainrule.tensor.STATE_EPOCH (or use Tensor._swap_data / the public "
        "setters), or compiled functions replay with stale guards; then update KNOWN")


def test_public_changes_bump_the_epoch():
    model = nn.Linear(3, 2)
    p = model.weight
    changes = [
        lambda: setattr(p, "grad", chainrule.zeros(2, 3)),
        lambda: p.requires_grad_(False),
        lambda: setattr(p, "data", chainrule.ones(2, 3)),
        lambda: model.eval(),
        lambda: model.register_forward_hook(lambda *a: None),
        lambda: model.register_buffer("extra", chainrule.zeros(1)),
        lambda: setattr(model, "bias", nn.Parameter(chainrule.zeros(2))),
        lambda: model.zero_grad(),
        lambda: chainrule.optim.SGD(model.parameters(), lr=0.1).zero_grad(),
    ]
    for change in changes:
        before = STATE_EPOCH[0]
        change()
        assert STATE_EPOCH[0] > before, change
    x = chainrule.ones(4, 3)
    model.weight.requires_grad_(True)
    before = STATE_EPOCH[0]
    model(x).sum().backward()
    assert STATE_EPOCH[0] > before
