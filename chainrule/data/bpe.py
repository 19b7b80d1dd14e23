"""GPT-2's byte-level BPE tokenizer in pure Python, from the ``vocab.json`` and ``merges.txt`` of a GPT-2 folder
(or its ``tokenizer.json``).

Encoding is three steps, as in GPT-2's reference implementation:

1. split the text into words with GPT-2's pre-tokenization pattern (contractions, runs of letters, of digits,
   of other symbols, each with at most one leading space, and runs of whitespace), written out here by
   Unicode category because Python's ``re`` has no ``\\p{L}``;
2. map each word's UTF-8 bytes to printable characters (GPT-2's byte-to-unicode table), so any text encodes;
3. merge adjacent symbols, lowest merge rank first, until no ranked pair is left; look the pieces up in the vocab.

Special tokens (``<|endoftext|>``) in the text are kept whole.
"""

from __future__ import annotations

import json
import unicodedata
from functools import lru_cache
from pathlib import Path

__all__ = ["GPT2Tokenizer", "pre_tokenize", "bytes_to_unicode", "has_tokenizer", "TOKENIZER_FILES"]

_CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")
# Unicode's White_Space property (what the reference pattern's \s matches); str.isspace() differs on U+001C-U+001F
_WHITESPACE = frozenset("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
                        + "".join(chr(c) for c in range(0x2000, 0x200B)))
_SPECIAL_TOKENS = ("<|endoftext|>",)


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from each byte to a printable character: printable Latin-1 bytes map to themselves, the
    others (control characters, space, ...) to the code points from 256 up, in byte order."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for byte in range(256):
        if byte in keep:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


def _kind(char: str) -> str:
    """'s' whitespace, 'L' letter, 'N' number, 'o' anything else: the classes of GPT-2's pattern."""
    if char in _WHITESPACE:
        return "s"
    category = unicodedata.category(char)[0]
    return category if category in "LN" else "o"


def pre_tokenize(text: str) -> list[str]:
    """GPT-2's words: ``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+``."""
    kinds = [_kind(c) for c in text]
    words, i, n = [], 0, len(text)
    while i < n:
        contraction = next((c for c in _CONTRACTIONS if text.startswith(c, i)), None)
        if contraction:
            end = i + len(contraction)
        elif kinds[i] != "s" or (text[i] == " " and i + 1 < n and kinds[i + 1] != "s"):
            start = i + 1 if text[i] == " " and kinds[i] == "s" else i  # at most one leading space
            end = start + 1
            while end < n and kinds[end] == kinds[start]:
                end += 1
        else:
            end = i + 1
            while end < n and kinds[end] == "s":
                end += 1
            if end < n and end - i > 1:  # \s+(?!\S): leave the last whitespace to the word that follows
                end -= 1
        words.append(text[i:end])
        i = end
    return words


TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer.json")


def has_tokenizer(folder) -> bool:
    """Whether ``folder`` holds a GPT-2 tokenizer's files."""
    folder = Path(folder)
    pair = (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
    return pair or (folder / "tokenizer.json").is_file()


def _merge_pairs(entries: list, where) -> list[tuple[str, str]]:
    """Merges written as "a b" lines (merges.txt, older tokenizer.json) or as [a, b] pairs (newer tokenizer.json)."""
    merges = [tuple(e.split(" ")) if isinstance(e, str) else tuple(e) for e in entries]
    bad = [m for m in merges if len(m) != 2]
    if bad:
        raise ValueError(f"GPT2Tokenizer: {where} has merges that are not two symbols: {bad[:3]}")
    return merges


class GPT2Tokenizer:
    """Byte-level BPE with GPT-2's vocabulary and merges: ``encode(text) -> ids``, ``decode(ids) -> text``."""

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]], special_tokens=_SPECIAL_TOKENS):
        self.encoder = dict(vocab)
        self.decoder = {i: token for token, i in self.encoder.items()}
        self.ranks = {pair: rank for rank, pair in enumerate(merges)}
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        self.special_tokens = [t for t in special_tokens if t in self.encoder]
        self._cache: dict[str, list[str]] = {}

    @classmethod
    def from_pretrained(cls, folder) -> GPT2Tokenizer:
        """The tokenizer of a GPT-2 folder: ``vocab.json`` and ``merges.txt``, or the ``tokenizer.json`` that
        transformers 5 writes alone."""
        folder = Path(folder)
        if (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
            vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
            lines = (folder / "merges.txt").read_text(encoding="utf-8").split("\n")
            return cls(vocab, _merge_pairs([line for line in lines if line and not line.startswith("#version")],
                                           folder / "merges.txt"))
        if (folder / "tokenizer.json").is_file():
            return cls._from_tokenizer_json(folder / "tokenizer.json")
        raise FileNotFoundError(f"GPT2Tokenizer: {folder} has no tokenizer files (vocab.json and merges.txt, "
                                "or tokenizer.json)")

    @classmethod
    def _from_tokenizer_json(cls, path: Path) -> GPT2Tokenizer:
        spec = json.loads(path.read_text(encoding="utf-8"))
        model, pre = spec.get("model") or {}, spec.get("pre_tokenizer") or {}
        if model.get("type") != "BPE" or pre.get("type") != "ByteLevel" or pre.get("add_prefix_space"):
            raise ValueError(f"GPT2Tokenizer: {path} is not GPT-2's byte-level BPE (model {model.get('type')!r}, "
                             f"pre-tokenizer {pre.get('type')!r}, add_prefix_space={pre.get('add_prefix_space')})")
        specials = [t["content"] for t in spec.get("added_tokens", []) if t.get("special")]
        return cls(model["vocab"], _merge_pairs(model["merges"], path), specials or _SPECIAL_TOKENS)

    def save_pretrained(self, folder) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "vocab.json").write_text(json.dumps(self.encoder, ensure_ascii=False), encoding="utf-8")
        merges = sorted(self.ranks, key=self.ranks.get)
        lines = "".join(f"{a} {b}\n" for a, b in merges)
        (folder / "merges.txt").write_text("#version: 0.2\n" + lines, encoding="utf-8")

    def __len__(self) -> int:
        return len(self.encoder)

    @property
    def eos_token_id(self) -> int | None:
        return self.encoder.get("<|endoftext|>")

    def encode(self, text: str) -> list[int]:
        ids = []
        for chunk, special in self._split_special(text):
            if special:
                ids.append(self.encoder[chunk])
                continue
            for word in pre_tokenize(chunk):
                symbols = "".join(self.byte_encoder[b] for b in word.encode("utf-8"))
                ids.extend(self._lookup(piece) for piece in self._bpe(symbols))
        return ids

    def decode(self, ids) -> str:
        tokens = [self.decoder[int(i)] for i in ids]
        text = "".join(tokens)
        return bytes(self.byte_decoder[c] for c in text).decode("utf-8", errors="replace")

    def _split_special(self, text: str) -> list[tuple[str, bool]]:
        chunks = [(text, False)]
        for token in self.special_tokens:
            split = []
            for chunk, special in chunks:
                if special:
                    split.append((chunk, True))
                    continue
                parts = chunk.split(token)
                for k, part in enumerate(parts):
                    if k:
                        split.append((token, True))
                    if part:
                        split.append((part, False))
            chunks = split
        return chunks

    def _lookup(self, piece: str) -> int:
        try:
            return self.encoder[piece]
        except KeyError:
            raise ValueError(f"GPT2Tokenizer: {piece!r} is not in the vocabulary "
                             "(vocab.json and merges.txt disagree)") from None

    def _bpe(self, symbols: str) -> list[str]:
        """Merge the word's symbols, always the adjacent pair of lowest rank first."""
        if symbols in self._cache:
            return self._cache[symbols]
        parts = list(symbols)
        while len(parts) > 1:
            ranked = [(self.ranks.get(pair, float("inf")), k) for k, pair in enumerate(zip(parts, parts[1:]))]
            rank, at = min(ranked)
            if rank == float("inf"):
                break
            first, second = parts[at], parts[at + 1]
            merged, k = [], 0
            while k < len(parts):  # merge every occurrence of the pair, left to right
                if k + 1 < len(parts) and parts[k] == first and parts[k + 1] == second:
                    merged.append(first + second)
                    k += 2
                else:
                    merged.append(parts[k])
                    k += 1
            parts = merged
        if len(self._cache) < 100_000:
            self._cache[symbols] = parts
        return parts
