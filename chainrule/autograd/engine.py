"""The backward pass: one iterative walk of the recorded graph in reverse topological order.

1. Count, for every node reachable from the outputs, how many consumers it has in this graph.
2. Start from the outputs; a node runs once all its consumers have sent their gradient (summed),
   calls its backward rule, and passes each input's gradient on to that input's node or leaf.
3. Only after the whole walk succeeded are leaf ``.grad`` (and retained non-leaf grads) updated,
   so an error mid-way changes nothing, with one exception: a leaf with a post-accumulate-grad hook
   (``Tensor.register_post_accumulate_grad_hook``, as DistributedDataParallel uses) gets its ``.grad``
   and its hooks as soon as the last edge into it has been walked, as in PyTorch.
4. Then the callbacks queued during the walk (``queue_callback``) run, first queued first.

No recursion anywhere, so a chain of 100,000 operations works.
"""

from __future__ import annotations

from collections.abc import Sequence

from chainrule.autograd.grad_mode import GRAD_ENABLED
from chainrule.autograd.graph import POST_ACCUMULATE_HOOKS, Node, PlacedGrad, received
from chainrule.backend import ARRAY_TYPES, xp_of
from chainrule.tensor import STATE_EPOCH, Tensor, wrap

# Whether the backward walk running now frees each node's saved state as it goes (no retain_graph): a rule
# that keeps saved state of its own (a compiled module's backward half) lets it go early when it does.
RELEASING = [True]

__all__ = ["backward", "grad", "queue_callback"]

# one list of queued callbacks per backward() running (backward may be called from a callback or a hook)
_CALLBACKS: list[list] = []


def queue_callback(callback) -> None:
    """Run ``callback()`` at the end of the ``backward()`` now running, after every ``.grad`` has been updated
    (PyTorch's ``Variable._execution_engine.queue_callback``). Callbacks run in the order queued."""
    if not _CALLBACKS:
        raise RuntimeError("queue_callback: final callbacks can only be installed during the backward pass")
    _CALLBACKS[-1].append(callback)


def backward(tensors, grad_tensors=None, retain_graph: bool | None = None, create_graph: bool = False,
             inputs=None) -> None:
    """Accumulate into ``.grad`` of the leaves (or of ``inputs`` only) the gradient of ``tensors``."""
    roots = _as_list(tensors)
    root_grads = _root_grads(roots, grad_tensors, "backward")
    wanted = None if inputs is None else _as_list(inputs)
    if retain_graph is None:
        retain_graph = create_graph
    callbacks: list = []
    _CALLBACKS.append(callbacks)
    try:
        seen = _Seen(wanted, {id(g._data) for g in root_grads})
        if POST_ACCUMULATE_HOOKS:
            seen.early = _EarlyLeaves(seen, create_graph)
        leaf_grads = _walk(roots, root_grads, retain_graph, create_graph, seen)
        if wanted is None:
            updates = seen.retained + list(leaf_grads.items())
        else:  # only the requested tensors, leaves or not, get .grad
            updates = [(t, leaf_grads.get(t) if t._node is None else seen.captured.get(t._node)) for t in wanted]
            updates = [(t, g) for t, g in updates if g is not None]
        for tensor, g in updates:
            _accumulate(tensor, g, create_graph, seen.exposed)
            if seen.early is not None and POST_ACCUMULATE_HOOKS.hooks_of(tensor):
                _run_post_accumulate_hooks(tensor)
        while callbacks:  # a callback may queue more
            callbacks.pop(0)()
    finally:
        _CALLBACKS.pop()
        STATE_EPOCH[0] += 1  # once for every .grad _accumulate set


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
    seen = _Seen(wanted, set())
    leaf_grads = _walk(roots, root_grads, retain_graph, create_graph, seen)
    result = []
    for i, t in enumerate(wanted):
        g = leaf_grads.get(t) if t._node is None else seen.captured.get(t._node)
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
            if root._data.dtype.kind == "c":
                raise RuntimeError(
                    f"{op}: grad can be implicitly created only for real scalar outputs, but the output is "
                    f"{root.dtype}; backpropagate from a real loss (e.g. z.abs().sum() or z.real) or pass gradient="
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


def _walk(roots, root_grads, retain_graph: bool, create_graph: bool, seen: _Seen) -> dict:
    """Run the backward rules from ``roots``. Returns the summed gradient of every leaf reached (of the
    ``wanted`` leaves only, when given) and notes in ``seen`` what the walk saw on the way."""
    plain = not create_graph  # no graph of the backward: fast entries serve, buffers add in place
    release = not retain_graph  # each node frees what its rule held once it ran
    sums: dict = {}  # node or leaf -> its gradient so far: a tensor as it came, or a _GradBuffer
    for root, g in zip(roots, root_grads):
        _add(sums, root._node or root, g, plain)
    root_nodes = [r._node for r in roots if r._node is not None]
    consumers = _count_consumers(root_nodes)
    wanted = seen.wanted
    needed = None if wanted is None else _needed_nodes(root_nodes, wanted)
    early = seen.early and seen.early.count_edges(root_nodes, consumers)  # leaves whose hooks fire mid-walk
    capturing = bool(seen.wanted_nodes)
    ready = [n for n in dict.fromkeys(root_nodes) if n not in consumers]
    prev_mode, GRAD_ENABLED[0] = GRAD_ENABLED[0], create_graph  # rules record a graph only when asked to
    prev_release, RELEASING[0] = RELEASING[0], release
    try:
        while ready:
            node = ready.pop()
            g = sums.pop(node, None)
            if g is not None:
                g = _taken(g, node)
                if node.hooks or node.retained is not None or capturing:
                    g = seen.arriving(node, g)  # hooks, retained and wanted non-leaf gradients
                if needed is not None and node not in needed:
                    g = None
            grads = node.apply(g, plain, release) if g is not None else (None,) * len(node.parents)
            for parent, pg in zip(node.parents, grads):
                if pg is not None and parent is not None:
                    if parent in sums or type(pg) is PlacedGrad:
                        _add(sums, parent, pg, plain)
                    else:
                        sums[parent] = pg  # the first to arrive, kept as it came
                if type(parent) is Node:  # this consumer is done: a parent runs after its last one
                    left = consumers[parent] - 1
                    consumers[parent] = left
                    if not left:
                        ready.append(parent)
                elif early and parent in early:
                    seen.early.edge_done(parent, sums)
    finally:
        GRAD_ENABLED[0] = prev_mode
        RELEASING[0] = prev_release
    return seen.leaves(sums)


class _Seen:
    """What a walk hands back besides the leaves' gradients: the (tensor, grad) pairs of retained non-leaf
    grads, the gradients of wanted non-leaves (by node), and the ids of the arrays hooks saw."""

    def __init__(self, wanted, exposed: set):
        self.wanted = wanted
        self.wanted_nodes = () if wanted is None else {t._node for t in wanted if t._node is not None}
        self.retained: list = []
        self.captured: dict = {}
        # arrays the caller or a hook may hold (the root gradients, what hooks saw): never adopted as .grad,
        # since a later in-place += would alter them
        self.exposed = exposed
        self.early: _EarlyLeaves | None = None  # backward() with post-accumulate hooks registered

    def arriving(self, node: Node, g: Tensor) -> Tensor:
        """``node``'s summed gradient, through its hooks, noted where retained or wanted."""
        if node.hooks:
            g = _run_hooks(node.hooks, g, self.exposed)
        if node.retained is not None:
            kept = node.retained()
            if kept is not None:
                self.retained.append((kept, g))
        if node in self.wanted_nodes:
            self.captured[node] = g
        return g

    def leaves(self, sums: dict) -> dict:
        """The leaves' summed gradients (every node was popped from ``sums``), through the leaves' hooks;
        with ``wanted``, only those asked for (no .grad and no hooks for the others, as in PyTorch)."""
        grads = {}
        for leaf, g in sums.items():
            if self.wanted is not None and not any(leaf is w for w in self.wanted):
                continue
            g = _taken(g, leaf._data)
            grads[leaf] = _run_hooks(leaf._hooks, g, self.exposed) if leaf._hooks else g
        return grads


class _EarlyLeaves:
    """The leaves with post-accumulate-grad hooks that a backward reaches: each gets its ``.grad`` and runs its
    hooks as soon as the walk has passed the last edge into it (so DistributedDataParallel can send it on
    while the rest of the backward runs)."""

    def __init__(self, seen: _Seen, create_graph: bool):
        self.seen = seen
        self.create_graph = create_graph
        self.left: dict = {}  # leaf -> edges into it not walked yet

    def count_edges(self, root_nodes: list, consumers: dict) -> dict:
        """Count the edges into hooked leaves (of those that will get a .grad); returns the counts."""
        wanted = self.seen.wanted
        left = self.left
        for node in set(root_nodes).union(consumers):
            for p in node.parents:
                if p is not None and type(p) is not Node and POST_ACCUMULATE_HOOKS.hooks_of(p) and (  # Parameters too
                        wanted is None or any(p is w for w in wanted)):
                    left[p] = left.get(p, 0) + 1
        return left

    def edge_done(self, leaf: Tensor, sums: dict) -> None:
        left = self.left[leaf] - 1
        self.left[leaf] = left
        if left or leaf not in sums:
            return
        g = _taken(sums.pop(leaf), leaf._data)
        if leaf._hooks:
            g = _run_hooks(leaf._hooks, g, self.seen.exposed)
        _accumulate(leaf, g, self.create_graph, self.seen.exposed)
        _run_post_accumulate_hooks(leaf)


def _run_post_accumulate_hooks(leaf: Tensor) -> None:
    for hook in list(POST_ACCUMULATE_HOOKS.hooks_of(leaf).values()):
        hook(leaf)


def _taken(g, meta) -> Tensor:
    """The summed gradient ``g`` of a node or leaf, as it leaves the sums: a tensor of ``meta``'s shape and
    dtype (``meta``: the node, or the leaf's array)."""
    kind = type(g)
    if kind is _GradBuffer:
        return g.value  # summed in the key's shape already
    data = g._data if kind is Tensor else g
    if type(data) in ARRAY_TYPES and data.shape == meta.shape and data.dtype is meta.dtype:
        return g if kind is Tensor else wrap(g)  # the usual case: as it came (fast entries give arrays)
    return received(g, meta.shape, meta.dtype)


def _add(sums: dict, key, g, in_place: bool) -> None:
    """``sums[key] += g`` for a tensor, an array from a fast entry or a placed gradient. The first gradient
    to arrive is kept as it came (a rule may hand one array to several inputs, or return a view: it is
    never written into); a second turns the entry into a :class:`_GradBuffer`, which holds its sum in the
    key's shape (so that a gradient of the key's shape is never broadcast over another's)."""
    old = sums.get(key)
    if old is None:
        sums[key] = _GradBuffer(g.materialize()) if type(g) is PlacedGrad else g
        return
    meta = key if type(key) is Node else key._data  # the shape and dtype every gradient of key is summed to
    if type(g) is not PlacedGrad:
        g = received(g, meta.shape, meta.dtype)
    if type(old) is _GradBuffer:
        old.add(g, in_place)
        return
    old = received(old, meta.shape, meta.dtype)
    if type(g) is PlacedGrad:
        buffer = sums[key] = _GradBuffer(old if old._rg else wrap(old._data.copy()))
        buffer.add(g, in_place)
    else:
        sums[key] = _GradBuffer(_sum(old, g, in_place))


class _GradBuffer:
    """A sum of gradients in an array the engine made (by a sum, from zeros or as a copy): no rule, hook
    or caller holds it, so more gradients may be added into it in place while no graph is being built."""

    __slots__ = ("value",)

    def __init__(self, value: Tensor):
        self.value = value

    def add(self, g, in_place: bool) -> None:
        """``value += g`` for a tensor of the same shape and dtype, or a placed gradient of its base."""
        value = self.value
        in_place = in_place and not value._rg
        if type(g) is PlacedGrad:
            if in_place:
                value._data[g.index] += g.values
                return
            g = g.materialize()
        if in_place and not g._rg:
            value._data += g._data
        else:
            self.value = value + g  # building the backward's graph: the add op records the sum


def _sum(a: Tensor, b: Tensor, in_place: bool) -> Tensor:
    """``a + b`` (of one shape and dtype) as a new tensor: on the arrays in a plain backward, else by the
    add op (which records the sum when a graph of the backward is being built)."""
    if not in_place or a._rg or b._rg:
        return a + b
    total = a._data + b._data
    return wrap(total if type(total) in ARRAY_TYPES else xp_of(total).asarray(total))  # numpy: 0-d sums are scalars


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
    arr = g._data  # of the tensor's shape and dtype (received)
    grad = tensor._grad  # past the property (hot): backward() bumps STATE_EPOCH once for all
    if grad is None:
        if create_graph:
            tensor._grad = g
            return
        # (CuPy's flags have no `writeable`: its arrays always are)
        if arr.base is not None or id(arr) in handed_out or not getattr(arr.flags, "writeable", True):
            arr = arr.copy()
        handed_out.add(id(arr))
        tensor._grad = wrap(arr)
    elif create_graph or grad._rg:
        tensor._grad = grad + g
    else:
        grad._data += arr
