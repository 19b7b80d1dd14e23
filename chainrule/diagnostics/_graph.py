"""Reading the recorded graph from the outside: walking nodes, finding the tensors a node consumed,
and capturing the gradient that reaches every node in one backward pass.

Shared by :func:`chainrule.diagnostics.explain_grad` and :mod:`chainrule.viz`. Nothing here changes
the engine: the walk only reads ``Node.parents``, and capturing uses public node hooks and
``autograd.grad``, so ``.grad`` of the leaves is left untouched.

A node does not store the inputs that require grad, only their nodes (or the leaf itself); it keeps
the others (``node.constants``: data, buffers, detached copies). The tensors in the graph are often
reachable too: those a rule saved (``node.saved``), those it is given as arguments (``node.args``: mul
gets both factors, ...) and those its closure captured. :func:`consumed_tensors` reads all four; it is
best effort by nature and is used only for explanations and labels, never for results.
"""

from __future__ import annotations

from collections.abc import Iterable

from chainrule.autograd.graph import Node
from chainrule.tensor import Tensor, wrap

__all__ = ["walk_nodes", "consumed_tensors", "capture_gradients", "graph_is_freed", "leaves_of", "nodes_leading_to"]


def walk_nodes(root: Node | None) -> list[Node]:
    """Every node reachable from ``root``, each once, in the order backward runs them: a node comes
    after every node that consumes its output (so ``root`` first, inputs last). Iterative."""
    if root is None:
        return []
    consumers: dict[Node, int] = {}
    seen = {root}
    stack = [root]
    while stack:
        node = stack.pop()
        for parent in node.parents:
            if type(parent) is Node:
                consumers[parent] = consumers.get(parent, 0) + 1
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
    order: list[Node] = []
    ready = [root]
    while ready:
        node = ready.pop()
        order.append(node)
        for parent in reversed(node.parents):
            if type(parent) is Node:
                consumers[parent] -= 1
                if consumers[parent] == 0:
                    ready.append(parent)
    return order


def leaves_of(nodes: Iterable[Node]) -> list[Tensor]:
    """The leaf tensors that require grad and feed the given nodes, each once, in order of discovery."""
    leaves: dict[int, Tensor] = {}
    for node in nodes:
        for parent in node.parents:
            if isinstance(parent, Tensor) and id(parent) not in leaves:
                leaves[id(parent)] = parent
    return list(leaves.values())


def consumed_tensors(node: Node) -> list[Tensor]:
    """The input tensors of ``node`` that can still be found: those outside the graph, those saved for its
    rule or given to it as arguments, and those captured by the rule's closure (one level deep, including
    tuples and lists of tensors).
    Empty once the rule was freed by a backward pass without ``retain_graph``."""
    found: list[Tensor] = []
    seen: set[int] = set()

    def add(value) -> None:
        if isinstance(value, Tensor) and id(value) not in seen:
            seen.add(id(value))
            found.append(value)

    for t in node.constants:
        add(t)
    for t in node.saved + node.args:
        add(t)
    closure = getattr(node.backward_fn, "__closure__", None) or ()
    for cell in closure:
        try:
            value = cell.cell_contents
        except ValueError:  # an empty cell
            continue
        if isinstance(value, (tuple, list)):
            for item in value:
                add(item)
        else:
            add(value)
    return found


def graph_is_freed(nodes: Iterable[Node]) -> bool:
    """True when a backward pass without ``retain_graph`` already released some node's rule."""
    return any(node.backward_fn is None for node in nodes)


def nodes_leading_to(nodes: list[Node], target: Tensor) -> set[Node]:
    """The nodes among ``nodes`` (in :func:`walk_nodes` order) with ``target`` among their ancestors:
    the target's own node (or, for a leaf, the nodes consuming it) and everything between it and the
    root. One pass from the inputs towards the root, since every node follows its inputs there."""
    on_path: set[Node] = set()
    if target._node is not None:
        on_path.add(target._node)
    for node in reversed(nodes):
        if node in on_path:
            continue
        for parent in node.parents:
            if parent is target or (type(parent) is Node and parent in on_path):
                on_path.add(node)
                break
    return on_path


def capture_gradients(output: Tensor, inputs: list[Tensor], nodes: Iterable[Node]) -> tuple[dict, tuple]:
    """Run one backward pass from ``output`` (``retain_graph=True``) and return the gradient of the
    output of every node in ``nodes`` that received one, plus the gradients of ``inputs``
    (``None`` for an input not reached). ``.grad`` attributes are not changed."""
    from chainrule.autograd.engine import grad as autograd_grad

    received: dict[Node, Tensor] = {}
    handles = []
    for node in nodes:
        handles.append(node.add_hook(_recorder(received, node)))
    try:
        grad_output = wrap(output.xp.ones_like(output._data))
        grads = autograd_grad(output, inputs, grad_outputs=grad_output, retain_graph=True, allow_unused=True) if inputs else ()
    finally:
        for handle in handles:
            handle.remove()
    return received, grads


def _recorder(received: dict, node: Node):
    def hook(g: Tensor) -> None:
        received[node] = g

    return hook
