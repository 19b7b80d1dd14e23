"""Variable-length sequences for the recurrent layers, following ``torch.nn.utils.rnn``.

    padded = pad_sequence([a, b, c], batch_first=True)            # (B, T, *), shorter ones padded
    packed = pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
    out, h_n = lstm(packed)                                       # out: a PackedSequence; h_n at each true end
    out, lengths = pad_packed_sequence(out, batch_first=True)

A :class:`PackedSequence` holds the time steps of all sequences, sorted by decreasing length, interleaved
step by step: ``data`` (sum of lengths, *), ``batch_sizes[t]`` = how many sequences are longer than ``t``,
and the permutations to and from the caller's batch order. Packing and padding are gathers on the data,
so gradients flow through them.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np  # host-side index bookkeeping (lengths, batch sizes, permutations)

import chainrule as _cr
from chainrule.tensor import Tensor

__all__ = ["PackedSequence", "pad_sequence", "pack_padded_sequence", "pad_packed_sequence", "pack_sequence",
           "unpad_sequence", "unpack_sequence", "invert_permutation"]


class PackedSequence(NamedTuple):
    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Tensor | None = None
    unsorted_indices: Tensor | None = None

    def to(self, *args, **kwargs) -> PackedSequence:
        """The data moved or converted (``.to(dtype)``, ``.to(device)``); the permutations follow the data's
        device, ``batch_sizes`` stays on the CPU (as PyTorch's)."""
        data = self.data.to(*args, **kwargs)
        if data.device == self.data.device:
            return self._replace(data=data)
        move = lambda t: None if t is None else t.to(data.device)  # noqa: E731
        return self._replace(data=data, sorted_indices=move(self.sorted_indices),
                             unsorted_indices=move(self.unsorted_indices))

    def double(self) -> PackedSequence:
        return self.to(_cr.float64)

    def float(self) -> PackedSequence:
        return self.to(_cr.float32)

    @property
    def is_cuda(self) -> bool:
        return self.data.is_cuda


def invert_permutation(permutation: Tensor | None) -> Tensor | None:
    if permutation is None:
        return None
    p = permutation.cpu().numpy()
    inverse = np.empty_like(p)
    inverse[p] = np.arange(len(p))
    return _cr.tensor(inverse, device=permutation.device)


def _host_ints(x, what: str) -> np.ndarray:
    """Lengths as a host array: a tensor on any device is copied to the host (bookkeeping is done there)."""
    a = x.cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    if a.ndim != 1 or not (a.dtype.kind in "iu" or a.size == 0):
        raise RuntimeError(f"{what} must be a 1-D list or tensor of integers, got {a.dtype} of shape {a.shape}")
    return a.astype(np.int64)


def _packed_layout(batch_sizes: Tensor):
    """For packed data with these batch sizes: the flat index t * B + b of each packed row in a (T, B)
    padded grid, each (sorted) sequence's length, T and B (host arrays; ``batch_sizes`` lives on the CPU)."""
    sizes = batch_sizes.cpu().numpy().astype(np.int64)
    T, B = len(sizes), int(sizes[0]) if len(sizes) else 0
    rows = np.concatenate([t * B + np.arange(n) for t, n in enumerate(sizes)]) if T else np.zeros(0, np.int64)
    lengths = (sizes[:, None] > np.arange(B)[None, :]).sum(0)
    return rows, lengths, T, B


def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack tensors of shape (L_i, *) into (T, B, *) (or (B, T, *)), T = max L_i, padding with ``padding_value``
    on the right (or the left)."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"pad_sequence: padding_side must be 'left' or 'right', got {padding_side!r}")
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("pad_sequence: received an empty list of sequences")
    trailing = tuple(sequences[0].shape[1:])
    for s in sequences:
        if not isinstance(s, Tensor) or s.ndim < 1 or tuple(s.shape[1:]) != trailing:
            got = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
            raise RuntimeError(f"pad_sequence: every sequence must be a tensor of shape (L, *{trailing}); got {got}")
    T = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        missing = T - s.shape[0]
        if missing:
            pad = _cr.full((missing, *trailing), padding_value, dtype=s.dtype, device=s.device)
            s = _cr.cat([s, pad] if padding_side == "right" else [pad, s])
        padded.append(s)
    return _cr.stack(padded, 0 if batch_first else 1)


def pack_padded_sequence(input: Tensor, lengths, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch (T, B, *) (or (B, T, *)) of sequences of the given lengths."""
    lengths = _host_ints(lengths, "pack_padded_sequence: lengths")
    batch_dim = 0 if batch_first else 1
    if input.ndim < 2 or input.shape[batch_dim] != len(lengths):
        raise RuntimeError(f"pack_padded_sequence: Expected `len(lengths)` to be equal to batch_size, but got "
                           f"{len(lengths)} (batch_size={input.shape[batch_dim] if input.ndim >= 2 else None})")
    if enforce_sorted:
        if np.any(np.diff(lengths) > 0):
            raise RuntimeError("`lengths` array must be sorted in decreasing order when `enforce_sorted` is True. "
                               "You can pass `enforce_sorted=False` to pack_padded_sequence and/or pack_sequence "
                               "to sidestep this requirement if you do not need ONNX exportability.")
        sorted_indices = None
        order = np.arange(len(lengths))
    else:
        order = np.argsort(-lengths, kind="stable")
        sorted_indices = _cr.tensor(order, device=input.device)
        input = input.index_select(batch_dim, sorted_indices)
    lengths = lengths[order]
    if len(lengths) and lengths[-1] <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an element in 'lengths' "
                           "that is <= 0")
    if batch_first:
        input = input.transpose(0, 1)
    T, B = input.shape[0], input.shape[1]
    if len(lengths) and lengths[0] > T:
        raise RuntimeError(f"pack_padded_sequence: a length ({lengths[0]}) exceeds the padded length {T}")
    sizes = (lengths[None, :] > np.arange(lengths[0] if len(lengths) else 0)[:, None]).sum(1)
    batch_sizes = _cr.tensor(sizes.astype(np.int64), device="cpu")  # on the CPU whatever the data's device, as PyTorch's
    rows, _, _, _ = _packed_layout(batch_sizes)
    data = input.reshape(T * B, *input.shape[2:])[_cr.tensor(rows, device=input.device)]
    return PackedSequence(data, batch_sizes, sorted_indices, invert_permutation(sorted_indices))


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: int | None = None) -> tuple[Tensor, Tensor]:
    """The inverse of :func:`pack_padded_sequence`: (padded, lengths), in the caller's batch order."""
    data = sequence.data
    rows, lengths, T, B = _packed_layout(sequence.batch_sizes)
    if total_length is not None:
        if total_length < T:
            raise ValueError("Expected total_length to be at least the length of the longest sequence in input, "
                             f"but got total_length={total_length} and max sequence length being {T}")
    else:
        total_length = T
    source = np.full(total_length * B, len(rows), dtype=np.int64)  # the padding row
    source[rows] = np.arange(len(rows))
    pad = _cr.full((1, *data.shape[1:]), padding_value, dtype=data.dtype, device=data.device)
    padded = _cr.cat([data, pad])[_cr.tensor(source, device=data.device)].reshape(total_length, B, *data.shape[1:])
    if sequence.unsorted_indices is not None:
        padded = padded.index_select(1, sequence.unsorted_indices)
        lengths = lengths[sequence.unsorted_indices.cpu().numpy()]
    if batch_first:
        padded = padded.transpose(0, 1)
    return padded, _cr.tensor(lengths.astype(np.int64), device="cpu")  # lengths on the CPU, as PyTorch's


def pack_sequence(sequences, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of tensors (L_i, *) (sorted by decreasing length unless ``enforce_sorted=False``)."""
    sequences = list(sequences)
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpad_sequence(padded_sequences: Tensor, lengths, batch_first: bool = False) -> list:
    """The list of sequences (L_i, *) in a padded batch."""
    lengths = _host_ints(lengths, "unpad_sequence: lengths")
    if not batch_first:
        padded_sequences = padded_sequences.transpose(0, 1)
    return [padded_sequences[b, :int(n)] for b, n in enumerate(lengths)]


def unpack_sequence(packed_sequences: PackedSequence) -> list:
    """The list of sequences (L_i, *) in a PackedSequence, in the caller's order."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
