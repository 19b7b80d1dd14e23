"""The numpy-only safetensors reader/writer: round trips, layout, interop with the official package,
validation of damaged files, and atomic writes."""

import json
import os
import re
import struct

import numpy as np
import pytest

from chainrule.io import CheckpointError, read_header, read_safetensors, write_safetensors
from chainrule.io import safetensors as sft

DTYPES = ["bool", "uint8", "int8", "int16", "uint16", "float16", "int32", "uint32", "float32", "complex64",
          "float64", "int64", "uint64"]
SHAPES = [(), (0,), (1,), (7,), (2, 3), (3, 0, 2), (2, 1, 4, 3)]


def _sample(dtype: str, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(_draw(dtype, shape, rng), dtype=dtype)  # 0-d draws come back as scalars


def _draw(dtype: str, shape: tuple, rng: np.random.Generator):
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith(("int", "uint")):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    if dtype == "complex64":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
    return (rng.standard_normal(shape) * 100).astype(dtype)


def _assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == np.ascontiguousarray(want).tobytes()  # bit-exact, NaNs included


def _mixed() -> dict:
    rng = np.random.default_rng(1)
    out = {f"t_{dtype}": _sample(dtype, (3, 2), rng) for dtype in DTYPES}
    out.update(scalar=np.array(2.5, np.float32), empty=np.zeros((0, 4), np.float64), odd=np.arange(3, dtype=np.int8))
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_every_dtype_and_shape(tmp_path, dtype):
    rng = np.random.default_rng(0)
    arrays = {f"s{i}": _sample(dtype, shape, rng) for i, shape in enumerate(SHAPES)}
    path = tmp_path / "a.safetensors"
    write_safetensors(path, arrays)
    got, metadata = read_safetensors(path)
    assert metadata == {}
    assert sorted(got) == sorted(arrays)
    for name, array in arrays.items():
        _assert_same(got[name], array)
        assert got[name].flags.writeable and got[name].flags.aligned and got[name].flags.c_contiguous


def test_special_float_values_round_trip_bit_exact(tmp_path):
    values = np.array([np.nan, -np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-45, np.finfo(np.float32).max], np.float32)
    halves = np.array([np.nan, np.inf, -np.inf, -0.0, 6e-8, 65504.0], np.float16)
    write_safetensors(tmp_path / "f.safetensors", {"v": values, "h": halves})
    got, _ = read_safetensors(tmp_path / "f.safetensors")
    _assert_same(got["v"], values)
    _assert_same(got["h"], halves)


def test_metadata_round_trip(tmp_path):
    metadata = {"format": "pt", "note": "ünïcødé \"quoted\"\n\ttabs", "empty": "", "json": json.dumps({"a": [1, 2]})}
    write_safetensors(tmp_path / "m.safetensors", {"x": np.ones(2, np.float32)}, metadata)
    arrays, got = read_safetensors(tmp_path / "m.safetensors")
    assert got == metadata
    infos, header_metadata = read_header(tmp_path / "m.safetensors")
    assert header_metadata == metadata
    assert infos["x"] == sft.TensorInfo("F32", (2,), 0, 8)


def test_no_tensors_at_all(tmp_path):
    write_safetensors(tmp_path / "e.safetensors", {}, {"k": "v"})
    assert read_safetensors(tmp_path / "e.safetensors") == ({}, {"k": "v"})


def test_layout_is_aligned(tmp_path):
    path = tmp_path / "l.safetensors"
    write_safetensors(path, _mixed())
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    assert length % 8 == 0 and raw[8:8 + length].rstrip(b" ").endswith(b"}")
    infos, _ = read_header(path)
    for info in infos.values():
        assert info.begin % np.dtype(sft._DTYPES[info.dtype].numpy).itemsize == 0


def test_non_contiguous_and_big_endian_inputs_are_written_as_contiguous_little_endian(tmp_path):
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    arrays = {"transposed": base.T, "strided": base[::2, 1::3], "big": base.astype(">f4"), "neg": base[::-1]}
    write_safetensors(tmp_path / "n.safetensors", arrays)
    got, _ = read_safetensors(tmp_path / "n.safetensors")
    for name, array in arrays.items():
        np.testing.assert_array_equal(got[name], array)
        assert got[name].dtype == array.dtype.newbyteorder("=")
    assert base.flags.c_contiguous and not arrays["transposed"].flags.c_contiguous  # inputs untouched


@pytest.mark.parametrize("value, what", [
    (np.zeros(2, np.complex128), "complex128"),
    (np.array(["a", "b"]), "<U1"),
    (np.array([object()], dtype=object), "object"),
    (np.zeros(2, "datetime64[s]"), "datetime64[s]"),
    ([1.0, 2.0], "list"),
])
def test_unsupported_values_are_refused_before_touching_the_file(tmp_path, value, what):
    path = tmp_path / "u.safetensors"
    write_safetensors(path, {"old": np.ones(1, np.float32)})
    before = path.read_bytes()
    with pytest.raises(TypeError, match=rf"tensor 'bad'.*{re.escape(what)}"):
        write_safetensors(path, {"fine": np.ones(3), "bad": value})
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["u.safetensors"]


def test_bad_names_and_metadata_are_refused(tmp_path):
    with pytest.raises(TypeError, match="names must be strings"):
        write_safetensors(tmp_path / "x", {3: np.ones(1)})
    with pytest.raises(ValueError, match="reserved"):
        write_safetensors(tmp_path / "x", {"__metadata__": np.ones(1)})
    with pytest.raises(TypeError, match="strings to strings"):
        write_safetensors(tmp_path / "x", {"a": np.ones(1)}, {"step": 3})
    assert os.listdir(tmp_path) == []


def test_missing_folder_and_folder_target(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_safetensors(tmp_path / "nope" / "x.safetensors", {})
    with pytest.raises(IsADirectoryError):
        write_safetensors(tmp_path, {})


def test_new_file_gets_umask_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    write_safetensors(tmp_path / "p.safetensors", {"a": np.ones(1)})
    assert (tmp_path / "p.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask


# ----- interop with the official package ---------------------------------------------------------------------

def test_bytes_identical_to_official_writer(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    arrays, metadata = _mixed(), {"format": "np"}  # one key: the official writer orders several at random
    write_safetensors(tmp_path / "ours.safetensors", arrays, metadata)
    assert (tmp_path / "ours.safetensors").read_bytes() == st.save(arrays, metadata=metadata)
    assert sft.serialize(arrays)[0] + b"".join(a.tobytes() for a in sft.serialize(arrays)[1]) == st.save(arrays)


def test_official_reader_loads_our_files(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    from safetensors import safe_open

    arrays = _mixed()
    write_safetensors(tmp_path / "ours.safetensors", arrays, {"k": "v"})
    loaded = st.load_file(tmp_path / "ours.safetensors")
    assert loaded.keys() == arrays.keys()
    for name, array in arrays.items():
        _assert_same(loaded[name], array)
    with safe_open(tmp_path / "ours.safetensors", framework="np") as handle:
        assert handle.metadata() == {"k": "v"}


def test_we_load_official_files(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    arrays = _mixed()
    st.save_file(arrays, tmp_path / "theirs.safetensors", metadata={"k": "v"})
    got, metadata = read_safetensors(tmp_path / "theirs.safetensors")
    assert metadata == {"k": "v"} and got.keys() == arrays.keys()
    for name, array in arrays.items():
        _assert_same(got[name], array)


# ----- damaged files ---------------------------------------------------------------------------------------

def _write_raw(path, header, data=b"", pad=True):
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    if pad:
        text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "good.safetensors"
    write_safetensors(path, {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.arange(3, dtype=np.int64)})
    return path


def _damaged(path, problem=None):
    with pytest.raises(CheckpointError, match=problem) as caught:
        read_safetensors(path)
    assert str(path) in str(caught.value)
    return caught.value


def test_truncated_anywhere_is_detected(good_file):
    raw = good_file.read_bytes()
    for cut in [0, 3, 8, 20, len(raw) - 40, len(raw) - 1]:
        good_file.write_bytes(raw[:cut])
        message = str(_damaged(good_file)).lower()
        assert "truncated" in message or "shorter" in message


def _flip(path, raw: bytes, old: bytes, new: bytes) -> None:
    assert old in raw[8:]
    path.write_bytes(raw[:8] + raw[8:].replace(old, new, 1))


def test_flipped_header_bytes(good_file):
    raw = good_file.read_bytes()
    for old, new, problem in [(b"{", b"x", "not valid JSON"), (b'"w":', b'"w";', "not valid JSON"),
                              (b'"w":', b'"\xff":', "not UTF-8"), (b'"F32"', b'"F3\x12"', "not valid JSON"),
                              (b'"F32"', b'"F34"', "unknown dtype"), (b'[2,3]', b'[2,4]', "need 32"),
                              (b'"shape"', b'"shapf"', "must be an object with")]:
        _flip(good_file, raw, old, new)
        _damaged(good_file, problem)


def test_every_single_byte_flip_in_the_header_fails_cleanly_or_reads(good_file):
    """No flip of a header byte may crash the reader with anything but CheckpointError."""
    raw = good_file.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    outcomes = set()
    for position in range(8 + length):
        for mask in (0x01, 0x20, 0x80):
            damaged = bytearray(raw)
            damaged[position] ^= mask
            good_file.write_bytes(bytes(damaged))
            try:
                read_safetensors(good_file)
                outcomes.add("read")
            except CheckpointError as err:
                assert str(good_file) in str(err)
                outcomes.add("refused")
    assert outcomes == {"read", "refused"}  # e.g. a changed letter in a name still reads


def test_flipped_length_byte(good_file):
    raw = bytearray(good_file.read_bytes())
    raw[6] = 0x7F
    good_file.write_bytes(bytes(raw))
    _damaged(good_file, "header length")
    raw[6] = 0
    raw[0] += 8  # header now claims 8 bytes of the data part
    good_file.write_bytes(bytes(raw))
    _damaged(good_file, "not valid JSON|entry must be")


def test_wrong_offsets(tmp_path):
    data = bytes(24)
    cases = {
        "gap": ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                 "b": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}}, "gap"),
        "overlap": ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                     "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}, "shared"),
        "out_of_bounds": ({"a": {"dtype": "F64", "shape": [4], "data_offsets": [0, 32]}}, "ends at data byte 32"),
        "count": ({"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 24]}}, "need 16"),
        "reversed": ({"a": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}}, "end before"),
        "trailing": ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, "16 bytes after the last"),
        "not_from_zero": ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}, "expected 0"),
    }
    for name, (header, problem) in cases.items():
        _damaged(_write_raw(tmp_path / f"{name}.safetensors", header, data), problem)


@pytest.mark.parametrize("entry, problem", [
    ({"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}, "unknown dtype"),
    ({"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}, "shape must be"),
    ({"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}, "shape must be"),
    ({"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}, "shape must be"),
    ({"dtype": "F32", "shape": [1], "data_offsets": [0]}, "data_offsets must be"),
    ({"dtype": "F32", "shape": [1]}, "must be an object with"),
    ([1, 2], "must be an object with"),
])
def test_malformed_entries(tmp_path, entry, problem):
    _damaged(_write_raw(tmp_path / "e.safetensors", {"a": entry}, bytes(4)), problem)


def test_malformed_headers(tmp_path):
    _damaged(_write_raw(tmp_path / "a", b"[1, 2]"), "expected an object")
    _damaged(_write_raw(tmp_path / "b", b'{"a": 1, "a": 2}'), "appears twice")
    _damaged(_write_raw(tmp_path / "c", b'{"__metadata__": {"k": 1}}'), "strings to strings")
    _damaged(_write_raw(tmp_path / "d", b'{"a": NaN}'), "not valid JSON")
    _damaged(_write_raw(tmp_path / "e", b""), "not valid JSON")


def test_bf16_is_refused_clearly(tmp_path):
    path = _write_raw(tmp_path / "bf.safetensors", {"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}, bytes(4))
    _damaged(path, "BF16.*F32")
    infos, _ = read_header(path)  # the header itself is fine
    assert infos["w"].dtype == "BF16"


def test_writing_bfloat16_is_refused_clearly(tmp_path):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    with pytest.raises(TypeError, match="'w' is bfloat16.*float32"):
        write_safetensors(tmp_path / "bf.safetensors", {"w": np.ones(2, dtype=ml_dtypes.bfloat16)})
    assert os.listdir(tmp_path) == []


def test_reading_a_folder_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError):
        read_safetensors(tmp_path)


# ----- atomic writes ---------------------------------------------------------------------------------------

class Crash(Exception):
    pass


def _crash(*args, **kwargs):
    raise Crash("simulated crash")


@pytest.fixture
def old_file(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    write_safetensors(path, {"old": np.arange(5, dtype=np.float32)}, {"v": "1"})
    return path, path.read_bytes()


@pytest.mark.parametrize("target", ["fsync", "replace", "mid_write", "interrupt"])
def test_crash_during_write_keeps_old_file_and_leaves_no_temp(monkeypatch, old_file, target):
    path, before = old_file
    new = {"new": np.ones((100, 100)), "also": np.zeros(3, np.int8)}
    if target == "fsync":
        monkeypatch.setattr(sft.os, "fsync", _crash)
    elif target == "replace":
        monkeypatch.setattr(sft.os, "replace", _crash)
    else:
        calls = []

        def write_then_crash(stream, array):
            calls.append(array)
            stream.write(b"partial bytes")
            if len(calls) == 2:
                raise KeyboardInterrupt if target == "interrupt" else Crash("disk full")
        monkeypatch.setattr(sft, "_write_array", write_then_crash)
    with pytest.raises((Crash, KeyboardInterrupt)):
        write_safetensors(path, new)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]
    assert read_safetensors(path)[1] == {"v": "1"}


def test_successful_write_replaces_and_leaves_no_temp(old_file):
    path, _ = old_file
    write_safetensors(path, {"new": np.ones(2)})
    assert list(read_safetensors(path)[0]) == ["new"]
    assert os.listdir(path.parent) == [path.name]


_KILLED_MID_SAVE = """
import sys, time
from chainrule.io import safetensors as sft

def body(stream):
    stream.write(b"half a checkpoint")
    stream.flush()
    print("writing", flush=True)
    time.sleep(60)

sft.atomic_write(sys.argv[1], body)
"""


def test_save_after_a_writer_was_killed_removes_its_temporary_file(old_file):
    import signal
    import subprocess
    import sys

    path, _ = old_file
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_MID_SAVE, str(path)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"  # its temporary file exists now
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=30)
    leftovers = [name for name in os.listdir(path.parent) if name.endswith(".tmp")]
    assert len(leftovers) == 1 and f".{writer.pid}@" in leftovers[0]
    write_safetensors(path, {"new": np.ones(2)})
    assert os.listdir(path.parent) == [path.name]
    np.testing.assert_array_equal(read_safetensors(path)[0]["new"], np.ones(2))


def test_save_leaves_temporary_files_of_live_or_remote_writers(old_file):
    path, _ = old_file
    host = sft.socket.gethostname().replace(".", "_")
    live = path.parent / f".{path.name}.{os.getpid()}@{host}.0000abcd.tmp"  # this very process is alive
    remote = path.parent / f".{path.name}.1@another-host.0000abcd.tmp"  # a pid on another machine of a shared folder
    other_file = path.parent / f".other.safetensors.999999999@{host}.0000abcd.tmp"  # not this file's
    for leftover in (live, remote, other_file):
        leftover.write_bytes(b"x")
    write_safetensors(path, {"new": np.ones(2)})
    assert sorted(os.listdir(path.parent)) == sorted([path.name, live.name, remote.name, other_file.name])
