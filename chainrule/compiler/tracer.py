"""The array-level tracer: while a step is captured, the state arrays are :class:`TracedArray` views, and
every numpy call that touches one is run for real on plain arrays and logged as an :class:`Instr`.

The capture *is* an eager step (same memory, same calls, same kernels), so each logged call can be
replayed later on the same memory: a result numpy allocated during the capture becomes that call's
fixed output buffer, and views keep pointing into the buffers they were made from.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys

import numpy as np

_ND_BASE = np.ndarray.base.__get__  # the C-level base, whatever a subclass makes of `.base`
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SELF_DIR = os.path.dirname(os.path.abspath(__file__))

# The tracer of the capture in progress (one at a time: captures do not nest).
ACTIVE: list = [None]


class CompileError(RuntimeError):
    """A compiled function does something a replayed program cannot do (read a tensor's value, change a
    shape with the data, ...). The message names the user's file and line, the reason and the fix."""


def root(array):
    """The array that owns ``array``'s memory (itself when it owns it)."""
    while True:
        base = _ND_BASE(array)
        if base is None or not isinstance(base, np.ndarray):
            return array
        array = base


def plain(x):
    """``x`` as a plain ndarray view when it is a traced array, else ``x`` (lists and tuples walked)."""
    if isinstance(x, TracedArray):
        return x.view(np.ndarray)
    if type(x) is tuple:
        return tuple([plain(v) for v in x])
    if type(x) is list:
        return [plain(v) for v in x]
    return x


def traced(x):
    """``x`` with every ndarray in it made a traced view (numpy scalars become 0-d arrays)."""
    if isinstance(x, np.ndarray):
        return x if isinstance(x, TracedArray) else x.view(TracedArray)
    if type(x) is tuple:
        return tuple([traced(v) for v in x])
    if type(x) is list:
        return [traced(v) for v in x]
    return x


def _has_traced(x) -> bool:
    if isinstance(x, TracedArray):
        return True
    if type(x) in (tuple, list):
        return any(_has_traced(v) for v in x)
    if type(x) is dict:
        return any(_has_traced(v) for v in x.values())
    return False


def _arrays_in(x, found: list) -> list:
    if isinstance(x, np.ndarray):
        found.append(x)
    elif type(x) in (tuple, list):
        for v in x:
            _arrays_in(v, found)
    elif type(x) is dict:
        for v in x.values():
            _arrays_in(v, found)
    return found


def user_site(depth: int = 1) -> str:
    """``file:line`` of the innermost frame outside chainrule (the user's code)."""
    frame = sys._getframe(depth)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
    return "<unknown>" if frame is None else sys.intern(f"{frame.f_code.co_filename}:{frame.f_lineno}")


def _op_site(depth: int = 1) -> str:
    """The innermost chainrule function outside the compile package (the op that made a call)."""
    frame = sys._getframe(depth)
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(_PACKAGE) and not name.startswith(_SELF_DIR):
            return sys.intern(f"{os.path.relpath(name, os.path.dirname(_PACKAGE))}:{frame.f_code.co_name}")
        if not name.startswith(_PACKAGE):
            return "user code"
        frame = frame.f_back
    return "?"


_VALUE_METHODS = {"item", "tolist", "__bool__", "__float__", "__int__", "__index__", "__complex__", "__format__",
                  "__repr__", "__str__", "_scalar", "numpy", "__array__", "_format_tensor"}


def _read_by_user(depth: int = 1) -> bool:
    """Whether a value read comes from user code: the chainrule frame the user's code called is one of
    Tensor's value methods (``.item()``, ``bool(t)``, ``print(t)``), or no chainrule frame is between."""
    frame = sys._getframe(depth)
    outermost = None
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        if not frame.f_code.co_filename.startswith(_SELF_DIR):
            outermost = frame
        frame = frame.f_back
    if outermost is None:
        return True
    return outermost.f_code.co_name in _VALUE_METHODS or outermost.f_code.co_filename.endswith("tensor.py") \
        and outermost.f_code.co_name.startswith("__")


class Instr:
    """One instruction of a program.

    ``kind``: "ufunc" (a numpy ufunc call or method), "call" (any function; its fresh results are copied
    into ``outs``), "fill" (an array creation, refilled each replay), "rng" (a draw from a chainrule
    generator), "guard" (a value the capture read, re-read and compared at replay), "host" (a Python call
    run as is: optimizer and scheduler steps), "grad" (``tensor.grad = value``), "mark" (a place in the
    program, :func:`mark`: it does nothing), and "fused" (made after the
    capture by :mod:`chainrule.compiler.fusion`: a run of elementwise calls as one loop). ``fn(*args, **kwargs)``
    is the call; ``outs`` mirror its result (an array buffer per fresh array result, None elsewhere);
    ``reads``/``writes`` are the root arrays it reads and writes; ``op`` and ``site`` attribute it.
    """

    __slots__ = ("kind", "fn", "args", "kwargs", "outs", "reads", "writes", "op", "site", "expected", "name")

    def __init__(self, kind, fn, args=(), kwargs=None, outs=None, reads=(), writes=(), name=""):
        self.kind, self.fn, self.args, self.kwargs, self.outs = kind, fn, args, kwargs or {}, outs
        self.reads, self.writes, self.name = reads, writes, name
        self.expected = None
        self.op = _op_site()
        self.site = user_site()

    def __str__(self) -> str:
        return f"{self.name} at {self.site}"


class _Same:
    """An output slot the replay only checks: a view of an input (``value`` None) or a non-array value
    (None, a number) that must come out the same again."""

    __slots__ = ("value", "view")

    def __init__(self, value=None, view: bool = False):
        self.value, self.view = value, view


def _fresh_outputs(result, inputs: list):
    """For a call's ``result``: the structure of output buffers (fresh arrays, numpy scalars made 0-d
    arrays), with :class:`_Same` for views of ``inputs`` and for other values, and the result to hand
    the caller. The first item is None when nothing needs copying or checking (a view)."""
    if isinstance(result, np.ndarray):
        if any(np.may_share_memory(result, a) for a in inputs):
            return None, traced(result)
        return result, traced(result)
    if isinstance(result, np.generic):
        buffer = np.array(result)
        return buffer, traced(buffer)
    if type(result) in (tuple, list) or isinstance(result, tuple):
        pairs = [_fresh_outputs(r, inputs) for r in result]
        outs = [_Same(view=True) if p[0] is None and isinstance(r, np.ndarray) else
                (_Same(r) if p[0] is None else p[0]) for p, r in zip(pairs, result)]
        given = [p[1] for p in pairs]
        made = result._make(given) if hasattr(result, "_make") else type(result)(given)
        return (None if all(type(o) is _Same and o.view for o in outs) else outs), made
    if result is None or isinstance(result, (bool, int, float, str)):
        return _Same(result), result
    return None, result


def _copy_into(result, outs, where) -> None:
    """Copy a replayed call's fresh results into the program's buffers; shapes, structure and the
    non-array values must be those of the capture. ``where``: the instruction (its text names it in a
    miss's message)."""
    if outs is None:
        return
    if type(outs) is _Same:
        if outs.view:
            if not isinstance(result, np.ndarray):
                raise GuardMiss(f"a result changed kind at {where}")
        elif isinstance(result, np.ndarray) or result != outs.value:
            raise GuardMiss(f"a result changed at {where} (it was {outs.value!r})")
        return
    if isinstance(outs, np.ndarray):
        if getattr(result, "shape", None) != outs.shape:
            raise GuardMiss(f"a result changed shape at {where} (data-dependent shape)")
        np.copyto(outs, result, casting="unsafe")
        return
    if not isinstance(result, (tuple, list)) or len(result) != len(outs):
        raise GuardMiss(f"a result changed structure at {where}")
    for r, o in zip(result, outs):
        _copy_into(r, o, where)


class GuardMiss(Exception):
    """A replay found a guard false: the call runs eagerly instead."""


class Tracer:
    """The log of one capture."""

    def __init__(self):
        self.instrs: list[Instr] = []
        self.paused = 0
        self.created: set = set()  # ids of root arrays the program makes (results, creations)
        self.problems: list[str] = []  # untraced copies and other things that make the capture unsafe
        self.keep: list = []  # keeps every root alive, so ids stay unique

    # ----- recording ----------------------------------------------------------------------------------
    def add(self, instr: Instr) -> Instr:
        self.instrs.append(instr)
        return instr

    def _roots(self, arrays) -> tuple:
        roots = []
        for a in arrays:
            r = root(a)
            self.keep.append(r)
            roots.append(r)
        return tuple(roots)

    def _made(self, outs) -> None:
        for a in _arrays_in(outs, []):
            r = root(a)
            self.keep.append(r)
            self.created.add(id(r))

    def ufunc(self, ufunc, method, inputs, kwargs):
        args = plain(inputs)
        kw = {k: plain(v) for k, v in kwargs.items()}
        out = kw.get("out")
        fn = ufunc if method == "__call__" else getattr(ufunc, method)
        self.paused += 1
        try:
            result = fn(*args, **kw)
        finally:
            self.paused -= 1
        reads = self._roots(_arrays_in(args, []) + _arrays_in(kw.get("where"), []))
        if method == "at":
            self.add(Instr("ufunc", fn, args, kw, None, reads, self._roots([args[0]]), ufunc.__name__))
            return None
        if out is not None:
            self.add(Instr("ufunc", fn, args, kw, None, reads, self._roots(_arrays_in(out, [])), ufunc.__name__))
            given = kwargs["out"]
            return given[0] if len(given) == 1 else given
        outs, given = _fresh_outputs(result, [])
        kw["out"] = tuple(outs) if isinstance(outs, list) else (outs,)
        self._made(outs)
        self.add(Instr("ufunc", fn, args, kw, None, reads, self._roots(_arrays_in(outs, [])), ufunc.__name__))
        return given

    def call(self, fn, args, kwargs, name: str = "", writes_args: bool = False, whole: bool = False):
        """Run ``fn`` on plain arrays and log it: in place (None result or ``out=``), a view (nothing to
        log, unless ``whole``: its own value tests must run at replay), a value (a guard), or fresh arrays
        (copied into buffers at replay). ``writes_args``: every array argument counts as written."""
        p_args = plain(args)
        p_kwargs = {k: plain(v) for k, v in kwargs.items()}
        self.paused += 1
        try:
            result = fn(*p_args, **p_kwargs)
        finally:
            self.paused -= 1
        inputs = _arrays_in(p_args, []) + _arrays_in(p_kwargs, [])
        reads = self._roots(inputs)
        name = name or getattr(fn, "__name__", "call")
        if result is None or p_kwargs.get("out") is not None:
            writes = self._roots(_arrays_in(p_kwargs.get("out"), []) or inputs[:1] if not writes_args else inputs)
            self.add(Instr("call", fn, p_args, p_kwargs, None, reads, writes, name))
            return kwargs.get("out") if result is not None else None
        if isinstance(result, (bool, int, float, complex, str, bytes)) and not isinstance(result, np.generic):
            return self.value(result, lambda: fn(*p_args, **p_kwargs), name, reads=reads)
        outs, given = _fresh_outputs(result, inputs)
        if outs is None and not (writes_args or whole):
            return given  # a view of an input: the buffers it looks into are fixed
        self._made(outs)
        writes = self._roots(_arrays_in(outs, []) + (inputs if writes_args else []))
        self.add(Instr("call", fn, p_args, p_kwargs, outs, reads, writes, name))
        return given

    def value(self, value, reread, name: str, reads: tuple = ()):
        """A value read during the capture: an error in user code, a guard in chainrule's own code."""
        if _read_by_user():
            self.problems.append(f"it reads a tensor's value at {user_site()} ({name}); a replayed program cannot "
                                 "depend on values: return the tensor and read it outside")
            return value
        instr = self.add(Instr("guard", reread, reads=reads, name=name))
        instr.expected = value
        return value

    def fill(self, array, value, name: str):
        """An array creation: its buffer is refilled with ``value`` (a number or an array) each replay,
        unless nothing writes it, in which case the program folds it to a constant."""
        self._made(array)
        if isinstance(value, np.ndarray):
            fn, args = np.copyto, (array, value)
        elif value is not None:
            fn, args = np.ndarray.fill, (array, value)
        else:
            fn, args = _nothing, (array,)  # np.empty: whatever the buffer holds
        self.add(Instr("fill", fn, args, None, None, (), self._roots([array]), name))
        return traced(array)

    def note_problem(self, text: str) -> None:
        self.problems.append(f"{text} at {user_site()} (in {_op_site()})")


def _nothing(array):
    pass


def _constant(result, name: str):
    """An array the traced namespace made from data that is not traced: a traced constant (so it mixes
    with traced arrays as eager's arrays mix), refilled each replay only if the program writes it."""
    t = _tracer()
    if t is None or not isinstance(result, np.ndarray):
        return result
    return t.fill(result, result.copy(), name)


def _making_constants(fn):
    """A numpy function as the traced namespace gives it: an array it makes from untraced data (arange,
    eye, broadcast_to of those, ...) is a traced constant, so that writing traced values into it later
    (``perm[i] = p``, which no hook would see on a plain array) is logged."""
    @functools.wraps(fn)
    def made(*args, **kwargs):
        result = fn(*args, **kwargs)
        if isinstance(result, np.ndarray) and not isinstance(result, TracedArray) and _tracer() is not None:
            if any(np.may_share_memory(result, a) for a in _arrays_in(args, []) + _arrays_in(kwargs, [])):
                return result  # a view of a plain array stays one (broadcast_to, reshape)
            return _constant(result, fn.__name__)
        return result
    return made


def _tracer():
    t = ACTIVE[0]
    return None if t is None or t.paused else t


def mark(name: str) -> None:
    """While a capture runs, put a named place in the program (where a replay may stop and resume later:
    the end of a compiled module's forward); elsewhere nothing."""
    t = _tracer()
    if t is not None:
        t.add(Instr("mark", _at_mark, name=name))


def _at_mark() -> None:
    pass


class TracedArray(np.ndarray):
    """An ndarray whose numpy calls are logged by the active tracer (plain numpy when none is active)."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        t = _tracer()
        if t is None:
            kw = {k: plain(v) for k, v in kwargs.items()}
            fn = ufunc if method == "__call__" else getattr(ufunc, method)
            return fn(*plain(inputs), **kw)
        return t.ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        t = _tracer()
        if t is None:
            return func(*plain(args), **{k: plain(v) for k, v in kwargs.items()})
        if func in _METADATA:
            return func(*plain(args), **{k: plain(v) for k, v in kwargs.items()})
        if func in _LIKE:
            result = func(*plain(args), **{k: plain(v) for k, v in kwargs.items()})
            value = _LIKE[func] if func is not np.full_like else (args[1] if len(args) > 1 else kwargs["fill_value"])
            if not _has_traced(value):
                return t.fill(result, value, func.__name__)
        if func in _DATA_SHAPED:
            t.note_problem(f"np.{func.__name__} makes an array whose shape depends on the data")
        if func in _PRINTING:
            return t.value(None, None, f"np.{func.__name__} (printing a tensor)")
        return t.call(func, args, kwargs, func.__name__)

    def __array_finalize__(self, obj):
        t = _tracer()
        if t is not None and isinstance(obj, TracedArray) and _ND_BASE(self) is None:
            t.note_problem("numpy made an untraced copy of a traced array")

    @property
    def base(self):  # eager's answer: a fresh result owns its memory (the engine decides copies on it)
        b = _ND_BASE(self)
        return None if b is None or _ND_BASE(b) is None and not isinstance(b, TracedArray) else b

    def __getitem__(self, index):
        t = _tracer()
        p = self.view(np.ndarray)
        if t is None:
            return p[plain(index)]
        if _has_traced(index) or _is_advanced(index):
            if _is_boolean_mask(index):
                t.note_problem("boolean-mask indexing makes an array whose shape depends on the data")
            return t.call(_getitem, (p, index), {}, "getitem")
        result = p[index]
        if isinstance(result, np.ndarray):
            return traced(result)
        return traced(p[(index if type(index) is tuple else (index,)) + (Ellipsis,)])  # 0-d view, not a scalar

    def __setitem__(self, index, value):
        t = _tracer()
        if t is None:
            self.view(np.ndarray)[plain(index)] = plain(value)
            return
        t.call(_setitem, (self, index, value), {}, "setitem")  # (returns None: logged as writing ``self``)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __reduce__(self):
        return self.view(np.ndarray).__reduce__()


def _getitem(a, index):
    return a[index]


def _setitem(a, index, value):
    a[index] = value


def _is_boolean_mask(index) -> bool:
    items = index if type(index) is tuple else (index,)
    return any(isinstance(i, np.ndarray) and i.dtype == np.bool_ and i.ndim > 0 for i in items)


def _is_advanced(index) -> bool:
    items = index if type(index) is tuple else (index,)
    return any(isinstance(i, (list, np.ndarray)) for i in items)


def _value_method(name: str):
    method = getattr(np.ndarray, name)

    def read(self, *args, **kwargs):
        t = _tracer()
        p = self.view(np.ndarray)
        if t is None:
            return method(p, *args, **kwargs)
        value = method(p, *args, **kwargs)
        return t.value(value, functools.partial(method, p, *args, **kwargs), f".{name.strip('_')}()",
                       reads=t._roots([p]))

    read.__name__ = name
    return read


def _logged_method(name: str, writes_self: bool = False):
    method = getattr(np.ndarray, name)

    def logged(self, *args, **kwargs):
        t = _tracer()
        if t is None:
            return method(self.view(np.ndarray), *plain(args), **{k: plain(v) for k, v in kwargs.items()})
        return t.call(method, (self,) + args, kwargs, name, writes_args=writes_self)

    logged.__name__ = name
    return logged


for _name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "__complex__", "tobytes",
              "__repr__", "__str__", "__format__", "__contains__"):
    setattr(TracedArray, _name, _value_method(_name))
for _name in ("copy", "astype", "flatten", "ravel", "reshape", "take", "repeat", "compress", "cumsum", "cumprod",
              "argmax", "argmin", "argsort", "round", "dot", "nonzero", "searchsorted", "choose", "trace", "ptp",
              "conj", "conjugate", "byteswap", "__copy__", "__deepcopy__", "squeeze", "transpose", "swapaxes",
              "diagonal", "all", "any", "sum", "prod", "max", "min", "mean", "std", "var", "clip"):
    if hasattr(np.ndarray, _name):
        setattr(TracedArray, _name, _logged_method(_name))
for _name in ("fill", "sort", "partition", "put", "itemset", "setfield", "resize"):
    if hasattr(np.ndarray, _name):
        setattr(TracedArray, _name, _logged_method(_name, writes_self=True))

_METADATA = {np.shape, np.ndim, np.size, np.result_type, np.may_share_memory, np.shares_memory,
             np.iscomplexobj, np.isrealobj, np.min_scalar_type, np.can_cast}
_LIKE = {np.zeros_like: 0, np.ones_like: 1, np.empty_like: None, np.full_like: None}
_DATA_SHAPED = {np.nonzero, np.flatnonzero, np.unique, np.argwhere, np.extract, np.compress}
_PRINTING = {np.array2string, np.array_repr, np.array_str}


class TracedNumpy:
    """The array namespace of traced arrays: numpy, except that conversions keep traced arrays traced
    (``np.asarray`` would drop them, and whatever is computed from them would be lost to the trace) and
    array creations are logged."""

    def __getattr__(self, name):
        value = getattr(np, name)
        if callable(value) and not isinstance(value, (np.ufunc, type)) and not name.startswith("_"):
            return _making_constants(value)
        return value

    @staticmethod
    def asarray(a, dtype=None, order=None, **kwargs):
        t = _tracer()
        if t is not None and _has_traced(a):
            if isinstance(a, TracedArray):
                return a if dtype is None or np.dtype(dtype) == a.dtype else a.astype(dtype)
            return t.call(np.asarray, (a,), dict(dtype=dtype, **kwargs), "asarray")
        return _constant(np.asarray(plain(a), dtype=dtype, order=order, **kwargs), "asarray")

    asanyarray = asarray

    @staticmethod
    def ascontiguousarray(a, dtype=None, **kwargs):
        t = _tracer()
        if t is not None and isinstance(a, TracedArray):
            if a.flags.c_contiguous and (dtype is None or np.dtype(dtype) == a.dtype) and a.ndim:
                return a
            return t.call(np.ascontiguousarray, (a,), dict(dtype=dtype, **kwargs), "ascontiguousarray")
        return _constant(np.ascontiguousarray(plain(a), dtype=dtype, **kwargs), "ascontiguousarray")

    @staticmethod
    def array(a, dtype=None, copy=True, **kwargs):
        t = _tracer()
        if t is not None and _has_traced(a):
            return t.call(np.array, (a,), dict(dtype=dtype, copy=copy, **kwargs), "array")
        return _constant(np.array(plain(a), dtype=dtype, copy=copy, **kwargs), "array")


def _creation(name: str, value):
    make = getattr(np, name)

    def create(*args, **kwargs):
        t = _tracer()
        result = make(*plain(args), **kwargs)
        if t is None or _has_traced(args):
            return result
        return t.fill(result, value, name)

    return staticmethod(create)


for _name, _value in (("zeros", 0), ("ones", 1), ("empty", None)):
    setattr(TracedNumpy, _name, _creation(_name, _value))


def _full(shape, fill_value, dtype=None, **kwargs):
    t = _tracer()
    result = np.full(shape, plain(fill_value), dtype=dtype, **kwargs)
    if t is None:
        return result
    if isinstance(fill_value, TracedArray):
        return t.call(np.full, (shape, fill_value), dict(dtype=dtype, **kwargs), "full")
    return t.fill(result, fill_value, "full")


TracedNumpy.full = staticmethod(_full)
TRACED_NUMPY = TracedNumpy()


def opaque(fn, numpy_below: int = 0, in_place: bool = False):
    """``fn`` (a backend function: a compiled kernel and its numpy twin) as one instruction while a capture
    runs: it is called on plain arrays, so the capture takes exactly eager's path (kernels test for plain
    ndarrays), and replayed whole, its own value tests included. Its fresh results are written into the
    program's buffers (through ``out=`` when it takes one). A kernel function that computes arrays under
    ``numpy_below`` elements with numpy's ufuncs is traced through instead (its ufunc calls are cheaper
    to replay than it is). It writes nothing but its results and ``out``, which the capture checks on its
    arguments' bytes (a call that did write another argument counts as writing them all), or, ``in_place``,
    it writes its first argument and returns None."""
    params = inspect.signature(fn).parameters
    out_param = params.get("out")
    takes_out = out_param is not None and out_param.default is None  # an optional output buffer
    out_index = list(params).index("out") if takes_out else None

    def logged(t, args, kwargs):
        if takes_out and len(args) == out_index + 1:  # ``out`` by keyword: the call logs it as what is written
            args, kwargs = args[:out_index], dict(kwargs, out=args[out_index])
        if in_place:  # (a call returning None is logged as writing its first array argument)
            return t.call(fn, args, kwargs, fn.__name__)
        if takes_out and len(args) > out_index:  # (an ``out`` followed by positional arguments)
            return t.call(fn, args, kwargs, fn.__name__, writes_args=True)
        out = kwargs.get("out")
        arrays = [a for a in _arrays_in((plain(args), {k: plain(v) for k, v in kwargs.items() if k != "out"}), [])
                  if out is None or not np.may_share_memory(a, plain(out))]
        before = [a.tobytes() for a in arrays]
        result = t.call(fn, args, kwargs, fn.__name__, whole=True)
        instr = t.instrs[-1] if t.instrs else None
        # Every argument counts as written when the call did write one (not as declared), or when it made
        # no array (a view, or values): that keeps it, with its own value tests, in the program.
        if instr is not None and instr.kind == "call" and instr.fn is fn and (
                not instr.writes or any(a.tobytes() != b for a, b in zip(arrays, before))):
            instr.writes = tuple({id(r): r for r in instr.writes + t._roots(arrays)}.values())
        return result

    @functools.wraps(fn)
    def run(*args, **kwargs):
        t = _tracer()
        if t is None:
            return fn(*args, **kwargs)
        if not _has_traced(args) and not _has_traced(kwargs) or args and getattr(args[0], "size", 0) < numpy_below:
            return fn(*args, **kwargs)
        given_out = kwargs.get("out", args[out_index] if takes_out and len(args) > out_index else None)
        result = logged(t, args, kwargs)
        if takes_out and given_out is None:
            instr = t.instrs[-1]
            if instr.fn is fn and isinstance(instr.outs, np.ndarray):  # replay straight into the buffer
                instr.kwargs = dict(instr.kwargs, out=instr.outs)
                instr.outs = None
        return result

    run.__wrapped_opaque__ = fn
    return run
