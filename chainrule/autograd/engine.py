"""The backward pass: one iterative walk of the recorded graph in reverse topological order.

1. Count, for every node reachable from the outputs, how many consumers it has in this graph.
2. Start from the outputs; a node runs once all its consumers have sent their gradient (summed),
   calls its backward rule, and passes each input's gradient on to that input's node or leaf.
3. Only after the whole walk succeeded are leaf ``.grad`` (and retained non-leaf grads) updated,
   so an error mid-way changes nothing.

No recursion anywhere, so a chain of 100,000 operations works.
"""

from __future__ import annotations

from collections.abc import Sequence

from chainrule.autograd.grad_mode import GRAD_ENABLED
from chainrule.autograd.graph import ANOMALY, Node, PlacedGrad
from chainrule.backend import ARRAY_TYPES, xp_of
from chainrule.tensor import INPLACE_EPOCH, Tensor, wrap

__all__ = ["backward", "grad"]


def backward(tensors, grad_tensors=None, retain_graph: bool | None = None, create_graph: bool = False,
             inputs=None) -> None:
    """Accumulate into ``.grad`` of the leaves (or of ``inputs`` only) the gradient of ``tensors``."""
    roots = _as_list(tensors)
    root_grads = _root_grads(roots, grad_tensors, "backward")
    wanted = None if inputs is None else _as_list(inputs)
    if retain_graph is None:
        retain_graph = create_graph
    captured: dict = {}
    exposed: set = set()
    leaf_grads, retained = _walk(roots, root_grads, retain_graph, create_graph, wanted, captured, exposed)
    if wanted is None:
        updates = retained + list(leaf_grads.items())
    else:  # only the requested tensors, leaves or not, get .grad
        updates = [(t, leaf_grads.get(t) if t._node is None else captured.get(t._node)) for t in wanted]
        updates = [(t, g) for t, g in updates if g is not None]
    # arrays the caller or a hook may hold: never adopted as .grad (a later in-place += would alter them)
    handed_out = exposed | {id(g._data) for g in root_grads}
    for tensor, g in updates:
        _accumulate(tensor, g, create_graph, handed_out)


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool | None = None, materialize_grads: bool = False) -> tuple:
    """The gradients of ``outputs`` with respect to ``inputs``, returned instead of stored in ``.grad``."""
    roots = _as_list(outputs)
    single = isinstance(inputs, Tensor)
    wanted = _as_list(inputs)
    for i, t in enumerate(wanted):
        if not t._rg:
            raise RuntimeError(f"grad: input {i} (shape {t.shape}) does not require grad")
    root_grads = _root_grads(roots, grad_outputs, "grad")
    if retain_graph is None:
        retain_graph = create_graph
    captured = {}
    leaf_grads, _ = _walk(roots, root_grads, retain_graph, create_graph, wanted, captured)
    result = []
    for i, t in enumerate(wanted):
        g = leaf_grads.get(t) if t._node is None else captured.get(t._node)
        if g is None:
            if materialize_grads:
                g = wrap(t.xp.zeros_like(t._data))
            elif not allow_unused:
                raise RuntimeError(
                    f"grad: input {i} (shape {t.shape}) was not used to compute the outputs; "
                    "pass allow_unused=True to get None for it"
                )
        result.append(g)
    return tuple(result) if not single or len(result) != 1 else (result[0],)


def _as_list(tensors) -> list:
    if isinstance(tensors, Tensor):
        return [tensors]
    return list(tensors)


def _root_grads(roots: list, grads, op: str) -> list:
    if grads is None or isinstance(grads, Tensor):
        grads = [grads] * len(roots) if grads is None else [grads]
    grads = list(grads)
    if len(grads) != len(roots):
        raise RuntimeError(f"{op}: got {len(roots)} outputs but {len(grads)} gradients")
    out = []
    for i, (root, g) in enumerate(zip(roots, grads)):
        if not root._rg:
            raise RuntimeError(
                f"{op}: element {i} of tensors does not require grad and does not have a grad_fn "
                "(was it computed under no_grad, or from tensors without requires_grad=True?)"
            )
        if g is None:
            if root._data.size != 1:
                raise RuntimeError(
                    f"{op}: grad can be implicitly created only for scalar outputs, but the output has "
                    f"shape {root.shape}; pass gradient= (a tensor of that shape), or reduce it first, "
                    "e.g. loss.sum().backward()"
                )
            g = wrap(root.xp.ones_like(root._data))
        else:
            if not isinstance(g, Tensor):
                from chainrule.creation import as_tensor

                g = as_tensor(g, dtype=root.dtype)
            if g.shape != root.shape:
                raise RuntimeError(
                    f"{op}: gradient has shape {g.shape} but the output it belongs to has shape {root.shape}"
                )
        out.append(g)
    return out


def _needed_nodes(root_nodes: list, wanted: list) -> set:
    """The nodes whose rules must run for the gradients of ``wanted``: those with a wanted tensor
    (or such a node) among their inputs."""
    wanted_nodes = {id(t._node) for t in wanted if t._node is not None}
    wanted_leaves = {id(t) for t in wanted if t._node is None}
    # iterative post-order DFS
    needed: set = set()
    done: set = set()
    stack = [(n, False) for n in root_nodes]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            done.add(node)
            # a node's rule must run when one of its inputs is wanted or leads to something wanted
            # (a wanted node's own gradient is captured before its rule would run)
            if any(
                (p in needed or id(p) in wanted_nodes) if type(p) is Node else (p is not None and id(p) in wanted_leaves)
                for p in node.parents
            ):
                needed.add(node)
            continue
        if node in done:
            continue
        stack.append((node, True))
        for p in node.parents:
            if type(p) is Node and p not in done:
                stack.append((p, False))
    return needed


def _walk(roots, root_grads, retain_graph, create_graph, wanted=None, captured=None, exposed=None):
    """Run the backward rules from ``roots``; return the summed gradient of every leaf reached (or
    of the ``wanted`` leaves only) and the (tensor, grad) pairs of retained non-leaf grads.
    ``captured`` receives the gradient of each wanted non-leaf's node; ``exposed`` the ids of
    arrays that hooks saw."""
    pending: dict = {}      # node -> summed gradient of its output so far
    leaf_grads: dict = {}   # leaf tensor -> summed gradient
    # keys of pending / leaf_grads whose gradient is a sum the engine made: until the node runs (or, for
    # a leaf, until the walk ends) its array is referenced nowhere else, so further gradients may be
    # added into it in place (see _add_gradient). Nothing is sent to a node after it ran.
    summed: set = set()
    in_place = not create_graph
    for root, g in zip(roots, root_grads):
        key = root._node if root._node is not None else root
        _add_gradient(pending if root._node is not None else leaf_grads, key, g, summed, in_place)

    root_nodes = [r._node for r in roots if r._node is not None]
    consumers = _count_consumers(root_nodes)
    filtering = wanted is not None
    needed = _needed_nodes(root_nodes, wanted) if filtering else None
    wanted_nodes = {id(t._node) for t in wanted if t._node is not None} if filtering else ()

    retained = []
    ready = [n for n in dict.fromkeys(root_nodes) if n not in consumers]
    prev_mode = GRAD_ENABLED[0]
    GRAD_ENABLED[0] = create_graph
    try:
        while ready:
            node = ready.pop()
            g = pending.pop(node, None)
            if g is None:  # every consumer sent None: nothing flows through; release its inputs
                _release_parents(node, consumers, ready)
                continue
            if node.hooks:
                g = _run_hooks(node.hooks, g, exposed)
            if node.retained is not None:
                kept = node.retained()
                if kept is not None:
                    retained.append((kept, g))
            if filtering:
                if id(node) in wanted_nodes:
                    captured[node] = g
                if node not in needed:
                    continue
            # the rule, inline (once per node): refuse a freed graph, check versions only when some
            # tensor was changed in place since the node was made, free what the rule held
            rule = node.backward_fn
            if rule is None:
                raise _freed_graph_error(node)
            if node.epoch != INPLACE_EPOCH[0] and (node.saved or node.out_version):
                _check_versions(node)
            out = node.out
            grads = rule(g, None if out is None else wrap(out, True, node), *node.args)
            if ANOMALY[0]:
                from chainrule.autograd.anomaly import check_backward

                check_backward(node, g, grads)
            parents = node.parents  # one gradient per parent: custom Functions check their count in apply
            if not retain_graph:
                node.backward_fn = None
                node.args = node.saved = node.constants = ()
                node.out = None
            for parent, pg in zip(parents, grads):
                if type(pg) is PlacedGrad:
                    if parent is not None:
                        _add_placed(pending if type(parent) is Node else leaf_grads, parent, pg, summed)
                    pg = None  # delivered; a node parent still counts this consumer below
                if type(parent) is Node:
                    if pg is not None:
                        if parent in pending:
                            _add_gradient(pending, parent, pg, summed, in_place)
                        else:
                            pending[parent] = pg
                    left = consumers[parent] - 1
                    if left:
                        consumers[parent] = left
                    else:
                        ready.append(parent)
                elif parent is not None and pg is not None:
                    if parent in leaf_grads:
                        _add_gradient(leaf_grads, parent, pg, summed, in_place)
                    else:
                        leaf_grads[parent] = pg
    finally:
        GRAD_ENABLED[0] = prev_mode

    if filtering:  # leaves nobody asked for: no .grad, no hooks (as in PyTorch)
        leaf_grads = {leaf: g for leaf, g in leaf_grads.items() if any(leaf is w for w in wanted)}
    for leaf in list(leaf_grads):
        if leaf._hooks:
            leaf_grads[leaf] = _run_hooks(leaf._hooks, leaf_grads[leaf], exposed)
    return leaf_grads, retained


def _add_gradient(grads: dict, key, g: Tensor, summed: set, in_place: bool) -> None:
    """``grads[key] += g``. Into the array in place when the engine made it by an earlier sum here (no
    rule, hook or caller holds it) and no graph is being built; else a new sum, which becomes the
    engine's. Never into an array a rule returned: rules hand one gradient to several inputs (add)
    and return views."""
    if key not in grads:
        grads[key] = g
        return
    old = grads[key]
    a, b = old._data, g._data
    if a.dtype != b.dtype or a.shape != b.shape or not in_place or old._rg or g._rg:
        total = old + g  # promotion, broadcasting and graph building as the add op does them
        grads[key] = total
        if in_place and total._data is not a and total._data is not b:
            summed.add(key)
    elif key in summed:
        a += b
    else:
        total = a + b
        if type(total) not in ARRAY_TYPES:  # numpy gives a scalar for 0-d operands: keep an array to add into
            total = xp_of(a).asarray(total)
        grads[key] = wrap(total)
        summed.add(key)


def _add_placed(grads: dict, key, placed: PlacedGrad, summed: set) -> None:
    """``grads[key] += placed``: its values added at its index into an array the engine owns (made
    from zeros, or a copy of a gradient a rule returned, which is never written into)."""
    old = grads.get(key)
    if old is None:
        grads[key] = placed.materialize()
        summed.add(key)
        return
    arr = old._data
    if old._rg or arr.dtype != placed.values.dtype or arr.shape != placed.shape:
        _add_gradient(grads, key, placed.materialize(), summed, True)  # promotion, broadcasting: the add op's way
        return
    if key not in summed:
        arr = arr.copy()
        grads[key] = wrap(arr)
        summed.add(key)
    arr[placed.index] += placed.values


def _release_parents(node: Node, consumers: dict, ready: list) -> None:
    """``node`` got no gradient: count it as done for each of its input nodes."""
    for parent in node.parents:
        if type(parent) is Node:
            left = consumers[parent] - 1
            if left:
                consumers[parent] = left
            else:
                ready.append(parent)


def _count_consumers(root_nodes: Sequence[Node]) -> dict:
    """For each node reachable from the roots, how many edges of this graph point at it (nodes
    nothing points at are absent)."""
    consumers: dict = {}
    roots = set(root_nodes)
    stack = list(roots)
    while stack:
        node = stack.pop()
        for p in node.parents:
            if type(p) is Node:
                if p in consumers:
                    consumers[p] += 1
                else:  # first visit
                    consumers[p] = 1
                    if p not in roots:  # roots were put on the stack at the start
                        stack.append(p)
    return consumers


def _freed_graph_error(node: Node) -> RuntimeError:
    return RuntimeError(
        f"backward: trying to backward through the graph a second time ({node.name()}'s saved "
        "values were freed after the first backward). Pass retain_graph=True to the first "
        "backward() or autograd.grad() call if you need to backward through it again."
    )


def _check_versions(node: Node) -> None:
    if node.out_version and node.out_version[0] != 0:
        raise RuntimeError(
            f"backward: the output of '{node.op}' (needed by {node.name()}) has been modified by an "
            f"in-place operation: it is at version {node.out_version[0]}, expected version 0. Use an "
            "out-of-place operation instead, or clone() the output before modifying it."
        )
    for i, (t, v) in enumerate(zip(node.saved, node.versions)):
        now = t._vc[0] if t._vc is not None else 0
        if now != v:
            raise RuntimeError(
                f"backward: one of the tensors needed by {node.name()} (saved tensor {i}, shape "
                f"{t.shape}, {t.dtype}) has been modified by an in-place operation: it is at version "
                f"{now}, but the forward operation '{node.op}' saved it at version {v}. Use an "
                "out-of-place operation instead (e.g. y = y + 1 rather than y += 1), or clone() it."
            )


def _run_hooks(hooks: dict, g: Tensor, exposed: set | None) -> Tensor:
    if exposed is not None:
        exposed.add(id(g._data))
    for hook in list(hooks.values()):
        replaced = hook(g)
        if replaced is not None:
            if replaced.shape != g.shape:
                raise RuntimeError(f"hook returned a gradient of shape {replaced.shape}, expected {g.shape}")
            g = replaced
            if exposed is not None:
                exposed.add(id(g._data))
    return g


def _accumulate(tensor: Tensor, g: Tensor, create_graph: bool, handed_out: set) -> None:
    """Add ``g`` into ``tensor.grad``: in place into a buffer we own, unless building a graph.

    A fresh gradient array is adopted as ``.grad`` without a copy, unless it may be shared: a view or
    broadcast of another array, or an array already given to another tensor or owned by the caller
    (rules pass one gradient to several inputs, e.g. add).
    """
    arr, want = g._data, tensor._data.dtype
    if arr.dtype is not want and arr.dtype != want:  # `is` first: numpy's == on dtypes is slow
        g = g.to(tensor.dtype)
        arr = g._data
    grad = tensor.grad
    if grad is None:
        if create_graph:
            tensor.grad = g
            return
        # (CuPy's flags have no `writeable`: its arrays always are)
        if arr.base is not None or id(arr) in handed_out or not getattr(arr.flags, "writeable", True):
            arr = arr.copy()
        handed_out.add(id(arr))
        tensor.grad = wrap(arr)
    elif create_graph or grad._rg:
        tensor.grad = grad + g
    else:
        grad._data += arr
