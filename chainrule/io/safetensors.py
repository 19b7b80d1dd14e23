"""The safetensors file format, read and written with numpy alone (no pickle, no eval, no compiled code).

A safetensors file is three parts::

    [8 bytes]  N, the header's length in bytes, an unsigned 64-bit little-endian integer
    [N bytes]  the header: a UTF-8 JSON object
                 {"__metadata__": {"key": "value", ...},               (optional, strings only)
                  "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
               padded at the end with spaces so that N is a multiple of 8
    [rest]     the tensors' raw bytes, little-endian, C order; ``data_offsets`` count from the start
               of this part, and the tensors tile it exactly: no gaps, no overlaps, nothing left over

The writer lays files out exactly as the official ``safetensors`` package does (tensors sorted by
decreasing dtype alignment, then by name; the header in that order, ``__metadata__`` first, compact JSON),
so the same tensors and metadata give the same bytes, and every tensor starts at a multiple of its item
size. Files are written atomically (:func:`atomic_write`): a crash leaves the old file or the new one,
never a mix.

The reader checks everything before it reads a tensor: the header length against the file size, the JSON,
each entry's dtype, shape and offsets, that byte counts equal dtype size times element count, and that the
tensors tile the data part. Anything wrong raises :class:`~chainrule.io.errors.CheckpointError` naming the
file and the problem. dtypes: BOOL, U8, I8, I16, U16, F16, I32, U32, F32, C64, F64, I64, U64. numpy has no
bfloat16 or float8, so files holding BF16/F8 tensors are refused with a clear error.
"""

from __future__ import annotations

import json
import math
import os
import socket
import struct
import sys
from collections.abc import Callable, Mapping
from typing import IO, NamedTuple

from chainrule.backend import np
from chainrule.io.errors import CheckpointError

__all__ = ["read_safetensors", "write_safetensors", "read_header", "serialize", "atomic_write", "TensorInfo",
           "MAX_HEADER_BYTES"]

MAX_HEADER_BYTES = 100_000_000  # the official reader's limit too: a bigger header means a corrupt length
_PREFIX = struct.Struct("<Q")


class _DType(NamedTuple):
    numpy: str | None  # little-endian numpy dtype, None when numpy cannot hold it
    itemsize: int
    rank: int  # the official writer's order: tensors of higher rank (alignment) come first


# name -> (numpy dtype, bytes per element, layout rank); ranks follow the official Dtype enum's order
_DTYPES: dict[str, _DType] = {
    "BOOL": _DType("|b1", 1, 0), "U8": _DType("|u1", 1, 1), "I8": _DType("|i1", 1, 2),
    "F8_E5M2": _DType(None, 1, 3), "F8_E4M3": _DType(None, 1, 4), "F8_E8M0": _DType(None, 1, 5),
    "I16": _DType("<i2", 2, 6), "U16": _DType("<u2", 2, 7), "F16": _DType("<f2", 2, 8), "BF16": _DType(None, 2, 9),
    "I32": _DType("<i4", 4, 10), "U32": _DType("<u4", 4, 11), "F32": _DType("<f4", 4, 12),
    "C64": _DType("<c8", 8, 13), "F64": _DType("<f8", 8, 14), "I64": _DType("<i8", 8, 15), "U64": _DType("<u8", 8, 16),
}
_NAME_OF_NUMPY = {np.dtype(d.numpy).str: name for name, d in _DTYPES.items() if d.numpy is not None}
_SUPPORTED = ", ".join(name for name, d in _DTYPES.items() if d.numpy is not None)
_BIG_ENDIAN_HOST = sys.byteorder == "big"


class TensorInfo(NamedTuple):
    """One header entry: where a tensor's bytes are, relative to the start of the data part."""

    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


# ----- writing ---------------------------------------------------------------------------------------------

def serialize(arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None,
              op: str = "serialize") -> tuple[bytes, list[np.ndarray]]:
    """The file's first two parts (length prefix and padded header) and the arrays to write after them,
    in file order: little-endian, C-contiguous (copied only when they are not already)."""
    entries = sorted(((_check_name(name, op), _as_writable(value, name, op)) for name, value in arrays.items()),
                     key=lambda entry: (-_DTYPES[entry[1][0]].rank, entry[0]))
    header: dict = {}
    if metadata:
        header["__metadata__"] = _check_metadata(metadata, op)
    offset = 0
    for name, (code, array) in entries:
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data part starts 8-byte aligned
    return _PREFIX.pack(len(text)) + text, [array for _, (_, array) in entries]


def write_safetensors(path: str | os.PathLike, arrays: Mapping[str, np.ndarray],
                      metadata: Mapping[str, str] | None = None, op: str = "write_safetensors") -> None:
    """Write numpy arrays (and an optional str -> str metadata map) to a safetensors file, atomically.

    Everything is checked before the file is touched: names must be strings, arrays of a dtype
    safetensors stores (see the module docstring). Non-contiguous and big-endian arrays are written as
    contiguous little-endian copies.
    """
    head, ordered = serialize(arrays, metadata, op)

    def write_body(stream: IO[bytes]) -> None:
        stream.write(head)
        for array in ordered:
            _write_array(stream, array)

    atomic_write(path, write_body, op)


def _write_array(stream: IO[bytes], array: np.ndarray) -> None:
    stream.write(array.reshape(-1).view(np.uint8))  # the array's own buffer, no copy


def _check_name(name, op: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{op}: tensor names must be strings, got {name!r} ({type(name).__name__})")
    if name == "__metadata__":
        raise ValueError(f"{op}: '__metadata__' is reserved by the safetensors format and cannot name a tensor")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"{op}: tensor name {name!r} is not valid UTF-8 text ({err.reason})") from None
    return name


def _check_metadata(metadata: Mapping[str, str], op: str) -> dict[str, str]:
    bad = {k: v for k, v in metadata.items() if not (isinstance(k, str) and isinstance(v, str))}
    if bad:
        raise TypeError(f"{op}: safetensors metadata maps strings to strings; these entries are not: {bad!r} "
                        "(encode other values, e.g. with json.dumps)")
    return dict(metadata)


def _as_writable(value, name: str, op: str) -> tuple[str, np.ndarray]:
    """The safetensors dtype code of ``value`` and ``value`` as a C-contiguous little-endian array."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{op}: tensor '{name}' must be a numpy array here, got {type(value).__name__}")
    if value.dtype.name == "bfloat16":
        raise TypeError(f"{op}: tensor '{name}' is bfloat16, which numpy cannot write portably; convert it to "
                        "float32 first (e.g. .astype('float32'))")
    little = value.dtype.newbyteorder("<") if value.dtype.byteorder in "=>" else value.dtype
    code = _NAME_OF_NUMPY.get(little.str) if value.dtype.kind in "biufc" else None
    if code is None:
        raise TypeError(f"{op}: tensor '{name}' has dtype {value.dtype} (shape {value.shape}), which safetensors "
                        f"cannot store; supported: {_SUPPORTED}. Convert it first, e.g. .astype('float32')")
    if value.dtype != little:
        value = value.astype(little)
    # not np.ascontiguousarray: it turns 0-d arrays into 1-d ones
    return code, value if value.flags.c_contiguous else value.copy(order="C")


def atomic_write(path: str | os.PathLike, write_body: Callable[[IO[bytes]], None], op: str = "save") -> None:
    """Create ``path`` with the bytes ``write_body(stream)`` writes, or leave it as it was.

    The bytes go to a hidden temporary file in the same folder, which is flushed and fsynced, then renamed
    onto ``path`` with ``os.replace`` (atomic on POSIX and Windows), and the folder is fsynced so the rename
    itself survives a power cut. On any error, ``KeyboardInterrupt`` included, the temporary file is removed
    and an existing file at ``path`` is untouched. The new file gets the usual permissions (0o666 less umask).
    """
    target = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{op}: folder '{folder}' does not exist; create it first (os.makedirs)")
    if os.path.isdir(target):
        raise IsADirectoryError(f"{op}: '{target}' is a folder; give a file path such as '{target}/model.safetensors'")
    _remove_stale_temps(folder, os.path.basename(target))
    temp = os.path.join(folder, f".{os.path.basename(target)}.{_writer_id()}.{os.urandom(4).hex()}.tmp")
    # O_EXCL: never clobber anything; mode 0o666 lets the umask decide, as for any new file
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as stream:
            write_body(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, target)
    except BaseException:
        _remove_quietly(temp)
        raise
    _fsync_folder(folder)


def _writer_id() -> str:
    """``pid@host``: who wrote a temporary file, so a later save can tell a dead writer's leftover."""
    return f"{os.getpid()}@{socket.gethostname().replace('.', '_')}"


def _remove_stale_temps(folder: str, name: str) -> None:
    """Delete temporary files for ``name`` left by writers on this host that no longer run (killed mid-save).

    A temporary file of a live writer, or of a writer on another host sharing the folder, is left alone.
    """
    if os.name != "posix":  # os.kill(pid, 0) is a liveness probe on POSIX only
        return
    prefix, host = f".{name}.", socket.gethostname().replace(".", "_")
    for entry in os.listdir(folder):
        if not (entry.startswith(prefix) and entry.endswith(".tmp")):
            continue
        writer = entry[len(prefix):-len(".tmp")].rpartition(".")[0]
        pid, _, writer_host = writer.partition("@")
        if pid.isdigit() and writer_host in (host, "") and not _process_alive(int(pid)):
            _remove_quietly(os.path.join(folder, entry))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_folder(folder: str) -> None:
    """Make the rename durable. Some platforms (Windows) cannot open folders: the rename stands anyway."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----- reading ---------------------------------------------------------------------------------------------

def read_safetensors(path: str | os.PathLike, *, upcast_bfloat16: bool = False
                     ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """All tensors of a safetensors file as numpy arrays (in header order) and its metadata map.

    The whole header is validated first; each array is then read straight into its own fresh, aligned
    buffer (writable, native byte order). Raises :class:`CheckpointError` for a malformed file or a dtype
    numpy cannot hold (F8, and BF16 unless ``upcast_bfloat16``, which reads BF16 as float32 exactly).
    """
    path = os.fspath(path)
    with _open(path) as stream:
        infos, metadata, data_start = _read_header(stream, path)
        for name, info in infos.items():
            if _DTYPES[info.dtype].numpy is None and not (upcast_bfloat16 and info.dtype == "BF16"):
                raise _corrupt(path, f"tensor '{name}' has dtype {info.dtype}, which numpy (and chainrule) cannot "
                                     f"represent; convert it to F32 before saving (in PyTorch: t.float())")
        arrays = {name: _read_array(stream, data_start, name, info, path) for name, info in infos.items()}
    return arrays, metadata


def read_header(path: str | os.PathLike) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """The validated header of a safetensors file (tensor entries and metadata) without reading any tensor."""
    path = os.fspath(path)
    with _open(path) as stream:
        infos, metadata, _ = _read_header(stream, path)
    return infos, metadata


def _open(path: str) -> IO[bytes]:
    if os.path.isdir(path):
        raise IsADirectoryError(f"'{path}' is a folder, not a safetensors file")
    return open(path, "rb")


def _corrupt(path: str, what: str) -> CheckpointError:
    return CheckpointError(f"cannot read safetensors file '{path}': {what}")


def _read_header(stream: IO[bytes], path: str) -> tuple[dict[str, TensorInfo], dict[str, str], int]:
    size = os.fstat(stream.fileno()).st_size
    prefix = stream.read(8)
    if len(prefix) < 8:
        raise _corrupt(path, f"the file is {size} bytes, shorter than the 8-byte header length "
                             "(truncated, or not a safetensors file)")
    (length,) = _PREFIX.unpack(prefix)
    if length > MAX_HEADER_BYTES:
        raise _corrupt(path, f"the header length field says {length} bytes, more than the {MAX_HEADER_BYTES} "
                             "allowed (corrupted length, or not a safetensors file)")
    if 8 + length > size:
        raise _corrupt(path, f"the header length field says {length} bytes but only {size - 8} follow it "
                             "(truncated file, or corrupted length)")
    raw = stream.read(length)
    entries = _parse_json(raw, path)
    metadata = _parse_metadata(entries.pop("__metadata__", None), path)
    infos = {name: _parse_entry(name, entry, path) for name, entry in entries.items()}
    _check_tiling(infos, size - 8 - length, path)
    return infos, metadata, 8 + length


def _parse_json(raw: bytes, path: str) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _corrupt(path, f"the header is not UTF-8 text (bad byte at header offset {err.start}); "
                             "the file is corrupted") from None
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except (ValueError, _DuplicateKey) as err:
        raise _corrupt(path, f"the header is not valid JSON ({err}); the file is corrupted") from None
    if not isinstance(header, dict):
        raise _corrupt(path, f"the header is JSON {type(header).__name__}, expected an object of tensor entries")
    return header


class _DuplicateKey(Exception):
    pass


def _no_duplicates(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise _DuplicateKey(f"the name {twice!r} appears twice")
    return out


def _no_constants(name: str):
    raise ValueError(f"{name} is not allowed in JSON")


def _parse_metadata(metadata, path: str) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise _corrupt(path, "'__metadata__' must map strings to strings")
    return metadata


def _parse_entry(name: str, entry, path: str) -> TensorInfo:
    where = f"tensor '{name}'"
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise _corrupt(path, f"{where}: entry must be an object with 'dtype', 'shape' and 'data_offsets', got {entry!r}")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in _DTYPES:
        raise _corrupt(path, f"{where}: unknown dtype {dtype!r} (known: {', '.join(_DTYPES)})")
    if not (isinstance(shape, list) and all(_is_count(d) for d in shape)):
        raise _corrupt(path, f"{where}: shape must be a list of non-negative integers, got {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)):
        raise _corrupt(path, f"{where}: data_offsets must be two non-negative integers, got {offsets!r}")
    begin, end = offsets
    if end < begin:
        raise _corrupt(path, f"{where}: data_offsets [{begin}, {end}] end before they begin")
    expected = math.prod(shape) * _DTYPES[dtype].itemsize
    if end - begin != expected:
        raise _corrupt(path, f"{where}: data_offsets [{begin}, {end}] span {end - begin} bytes, but dtype {dtype} "
                             f"and shape {shape} need {expected}")
    return TensorInfo(dtype, tuple(shape), begin, end)


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_tiling(infos: dict[str, TensorInfo], data_size: int, path: str) -> None:
    """The tensors must cover the data part exactly: in bounds, no gap, no overlap, nothing after."""
    position, previous = 0, None
    for name, info in sorted(infos.items(), key=lambda item: (item[1].begin, item[1].end)):
        if info.end > data_size:
            raise _corrupt(path, f"tensor '{name}' ends at data byte {info.end}, but the data part has only "
                                 f"{data_size} bytes (truncated file, or wrong data_offsets)")
        if info.begin != position:
            problem = "a gap of unclaimed bytes" if info.begin > position else "bytes shared with another tensor"
            after = f"after tensor '{previous}', " if previous is not None else ""
            raise _corrupt(path, f"wrong data_offsets: tensor '{name}' begins at data byte {info.begin}, {after}"
                                 f"expected {position} ({problem})")
        position, previous = info.end, name
    if position != data_size:
        raise _corrupt(path, f"{data_size - position} bytes after the last tensor belong to none "
                             f"(the data part is {data_size} bytes, the tensors cover {position})")


def _read_array(stream: IO[bytes], data_start: int, name: str, info: TensorInfo, path: str) -> np.ndarray:
    if info.dtype == "BF16":  # bfloat16 is float32's top half: read the 16-bit words, shift them up (exact)
        words = _read_array(stream, data_start, name, info._replace(dtype="U16"), path)
        return (words.astype(np.uint32) << 16).view(np.float32)
    array = np.empty(info.shape, dtype=np.dtype(_DTYPES[info.dtype].numpy))
    wanted = info.end - info.begin
    if wanted:
        stream.seek(data_start + info.begin)
        got = stream.readinto(array.reshape(-1).view(np.uint8))
        if got != wanted:
            raise _corrupt(path, f"tensor '{name}': read {got} of its {wanted} bytes (the file changed while being read?)")
    if _BIG_ENDIAN_HOST and array.dtype.byteorder == "<":
        array = array.astype(array.dtype.newbyteorder("="))
    return array
