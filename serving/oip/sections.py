"""Binary BYTES sections (the binary tensor data extension) read in numpy, not string by string.

A section is each string's 4-byte little-endian length, then its UTF-8 bytes. When every string
is 1 to 255 bytes without NUL (categories, numbers written as text), the section's structure is
checked whole in a few numpy passes; its strings are then made only if something reads them,
and a category's code is found from its bytes (one little-endian number of up to 8 bytes, looked
up in the sorted keys of the known categories). 1,000 categories are coded in about 20 us where
making and looking up 1,000 strings took 60.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import overload

import numpy as np


class Strings(Sequence[str]):
    """A BYTES section of short strings (see short_strings): the strings are made (one split of
    the decoded text) only when read; category codes are read straight from the bytes."""

    __slots__ = ("_items", "_lengths", "_raw", "_starts", "_text")

    def __init__(self, raw: np.ndarray, starts: np.ndarray, lengths: np.ndarray, text: str):
        self._raw, self._starts, self._lengths, self._text = raw, starts, lengths, text
        self._items: list[str] | None = None

    def __len__(self) -> int:
        return len(self._starts)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        return self.items[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self.items)

    @property
    def items(self) -> list[str]:
        """The strings (each length was replaced by a NUL: four NULs part one from the next)."""
        if self._items is None:
            self._items = self._text.split("\x00\x00\x00\x00")[1:]
        return self._items

    def codes(self, known: Mapping[str, float]) -> np.ndarray | None:
        """Each string's code in `known`, found by its bytes (strings of at most 8 bytes, each
        read as one little-endian number); None if one is longer or not known: the strings
        are then looked up one by one, and a refused one named."""
        if self._lengths.max() > _KEY_BYTES:
            return None
        keys, codes = _key_table(known)
        if not len(keys):
            return None
        padded = np.concatenate([self._raw, np.zeros(_KEY_BYTES, dtype=np.uint8)])
        # The 8 bytes from every offset (unaligned, overlapping), then each string's own.
        windows = np.ndarray((len(self._raw) + 1,), dtype="<u8", buffer=padded, strides=(1,))
        found = windows[self._starts + 4] & _LOW_BYTES[self._lengths]
        at = np.searchsorted(keys, found)
        at[at == len(keys)] = 0
        return codes[at] if np.array_equal(keys[at], found) else None


_KEY_BYTES = 8
_LOW_BYTES = np.array([(1 << (8 * n)) - 1 for n in range(_KEY_BYTES + 1)], dtype=np.uint64)
_KEPT_TABLES = 64
_key_tables: dict[int, tuple[Mapping[str, float], tuple[np.ndarray, np.ndarray]]] = {}


def _key_table(known: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """The keys (bytes as numbers) of the known strings that have one, sorted, and their codes;
    kept for the mappings in use (the features of the models served)."""
    kept = _key_tables.get(id(known))
    if kept is not None and kept[0] is known:
        return kept[1]
    # A known string with a NUL could share its key with a shorter one; the strings read have
    # none, so it is left out.
    keyed = sorted((int.from_bytes(encoded, "little"), code) for text, code in known.items()
                   for encoded in [text.encode()]
                   if 0 < len(encoded) <= _KEY_BYTES and b"\x00" not in encoded)
    table = (np.array([k for k, _ in keyed], dtype=np.uint64),
             np.array([c for _, c in keyed], dtype=np.float64))
    if len(_key_tables) >= _KEPT_TABLES:
        _key_tables.clear()
    _key_tables[id(known)] = (known, table)
    return table


def short_strings(chunk: memoryview) -> Strings | None:
    """A BYTES section whose strings are 1 to 255 bytes of UTF-8 without NUL, checked whole in
    a few numpy passes; None for any other (serving.oip.wire walks it, and says what is wrong).

    Then the only zero bytes are the three high bytes of each length: their positions give
    every string's start, and the chain of starts and lengths is checked from the first byte to
    the last (so it is the section's one reading). The text is decoded once, each length byte
    made a NUL, to check it is UTF-8.
    """
    raw = np.frombuffer(chunk, dtype=np.uint8)
    zeros = np.flatnonzero(raw == 0)
    if not len(zeros) or len(zeros) % 3:
        return None
    triples = zeros.reshape(-1, 3)
    starts = triples[:, 0] - 1
    # Increasing positions, the third two after the first of each triple: three in a row.
    if starts[0] != 0 or not (triples[:, 2] - triples[:, 0] == 2).all():
        return None
    lengths = raw[starts]
    ends = starts + 4 + lengths
    if ends[-1] != len(raw) or not np.array_equal(starts[1:], ends[:-1]):
        return None
    text = raw.copy()
    text[starts] = 0
    try:
        return Strings(raw, starts, lengths, text.tobytes().decode())
    except UnicodeDecodeError:
        return None  # the walk says which input
