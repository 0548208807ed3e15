"""The ids a file's rows have used so far, for the repeat check: a row's at a time, or a
whole Arrow block's at once.

Why: the check must see every id of a file (a repeat rejects the later row, naming the
first), and a Python dict of a million ids cost ~1 s to fill and probe, block by block,
next to a ~1.2 s floor for reading the whole file. A block's ids are kept here as Arrow
strings with a 64-bit hash each, computed in numpy and held sorted, so a new block is
checked against all earlier ones with one ``searchsorted``. Hashes only narrow the search:
an equal hash is settled by comparing the ids themselves, so the answers are exact.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_MULTIPLIER = np.uint64(0x100000001B3)  # FNV's 64-bit prime: odd, so no bits are lost
_LENGTH_MIX = np.uint64(0x9E3779B97F4A7C15)
_POWERS = np.ones(1, dtype=np.uint64)
# Ids registered row by row are moved into the hashed store past this many, when the next
# block is added (0: every time, so a block's check never probes a dict of Python strings).
_ROWS_KEPT = 0


def _powers(count: int) -> np.ndarray:
    """_MULTIPLIER ** k (mod 2**64) for k < count."""
    global _POWERS
    if len(_POWERS) < count:
        factors = np.full(count, _MULTIPLIER, dtype=np.uint64)
        factors[0] = 1
        _POWERS = np.cumprod(factors, dtype=np.uint64)
    return _POWERS


_MASK = (1 << 64) - 1


def hash_one(key: str) -> int:
    """``id_hashes`` of one string, in plain Python (a row's id, checked on its own)."""
    data = key.encode("utf-8")
    total, power, multiplier = 0, 1, int(_MULTIPLIER)
    for byte in data:
        total = (total + byte * power) & _MASK
        power = (power * multiplier) & _MASK
    return total ^ ((len(data) * int(_LENGTH_MIX)) & _MASK)


def id_hashes(ids: pa.Array) -> np.ndarray:
    """A 64-bit hash of each string of ``ids`` (no nulls): a polynomial in its UTF-8
    bytes, mixed with its length. Equal strings always hash equal."""
    if ids.type != pa.large_string():
        ids = ids.cast(pa.large_string())
    count = len(ids)
    _, offsets_buffer, data_buffer = ids.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64, count=count + 1, offset=ids.offset * 8)
    lengths = np.diff(offsets)
    mixed = lengths.astype(np.uint64) * _LENGTH_MIX
    base, total = int(offsets[0]), int(offsets[-1] - offsets[0])
    if not total:
        return mixed
    data = np.frombuffer(data_buffer, dtype=np.uint8, count=total, offset=base)
    starts = offsets[:-1] - base
    position = np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)
    terms = data.astype(np.uint64) * _powers(int(lengths.max()))[position]
    filled = lengths > 0
    sums = np.zeros(count, dtype=np.uint64)
    sums[filled] = np.add.reduceat(terms, starts[filled])
    return sums ^ mixed


class SeenIds:
    """id -> the row number that first used it, as ``EntityReader._row`` keeps it."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}
        self._hashes = np.empty(0, dtype=np.uint64)  # sorted
        self._where = np.empty(0, dtype=np.int64)  # _hashes' ids: index into the store
        self._parts: list[pa.Array] = []
        self._numbers: list[np.ndarray] = []
        self._store: tuple[pa.Array, np.ndarray] | None = None

    # --- as a dict, for the row-by-row readers --------------------------------------
    def get(self, key: str, default: int | None = None) -> int | None:
        """The row that first used ``key`` (``default`` when none has)."""
        found = self.rows.get(key)
        if found is not None:
            return found
        if not len(self._hashes):
            return default
        wanted = np.uint64(hash_one(key))
        j = int(np.searchsorted(self._hashes, wanted))
        while j < len(self._hashes) and self._hashes[j] == wanted:
            store, numbers = self._stored()
            where = int(self._where[j])
            if store[where].as_py() == key:
                return int(numbers[where])
            j += 1
        return default

    def _stored(self) -> tuple[pa.Array, np.ndarray]:
        """Every id of the hashed store in one array, and the rows that used them."""
        if self._store is None:
            self._store = (pa.concat_arrays(self._parts), np.concatenate(self._numbers))
        return self._store

    def __setitem__(self, key: str, number: int) -> None:
        self.rows[key] = number

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __len__(self) -> int:
        return len(self.rows) + len(self._hashes)

    def update(self, pairs: Iterable[tuple[str, int]]) -> None:
        """Register ids row by row (see :meth:`add_block` for a block)."""
        self.rows.update(pairs)

    def isdisjoint(self, keys: Iterable[str]) -> bool:
        """Whether none of ``keys`` has been used."""
        keys = list(keys)
        if not self.rows.keys().isdisjoint(keys):
            return False
        return not keys or not self._bulk_rows(pa.array(keys, type=pa.large_string()))

    # --- a block at a time ------------------------------------------------------------
    def overlaps(self, ids: pa.Array, hashes: np.ndarray | None = None) -> bool:
        """Whether any of ``ids`` (Arrow strings, no nulls; ``hashes``: their id_hashes)
        has been used."""
        if self.rows:
            registered = pa.array(list(self.rows), type=pa.string())
            if len(registered) <= len(ids):
                inside = pc.is_in(registered, value_set=ids.cast(pa.string()))
            else:
                inside = pc.is_in(ids.cast(pa.string()), value_set=registered)
            if pc.any(inside).as_py():
                return True
        return bool(len(self._hashes)) and bool(self._bulk_rows(ids, True, hashes))

    def add_block(
        self, ids: pa.Array, numbers: np.ndarray, hashes: np.ndarray | None = None
    ) -> None:
        """Register ``ids`` (distinct, none used before: see :meth:`overlaps`), used by
        rows ``numbers`` (``hashes``: their id_hashes)."""
        if len(self.rows) > _ROWS_KEPT:
            moved = self.rows
            self.rows = {}
            numbers_moved = np.fromiter(moved.values(), dtype=np.int64, count=len(moved))
            self._add(pa.array(list(moved), type=pa.string()), numbers_moved)
        self._add(ids, numbers, hashes)

    def _add(self, ids: pa.Array, numbers: np.ndarray, hashes: np.ndarray | None = None) -> None:
        if not len(ids):
            return
        start = sum(len(part) for part in self._parts)
        hashes = id_hashes(ids) if hashes is None else hashes
        order = np.argsort(hashes, kind="stable")
        hashes = hashes[order]
        at = np.searchsorted(self._hashes, hashes)
        self._hashes = np.insert(self._hashes, at, hashes)
        self._where = np.insert(self._where, at, order.astype(np.int64) + start)
        self._parts.append(ids.cast(pa.large_string()))
        self._numbers.append(np.asarray(numbers, dtype=np.int64))
        self._store = None

    def _bulk_rows(
        self, ids: pa.Array, first_only: bool = False, hashes: np.ndarray | None = None
    ) -> dict[int, int]:
        """Index in ``ids`` -> row number, for those already in the hashed store."""
        hashes = id_hashes(ids) if hashes is None else hashes
        order = np.argsort(hashes)  # sorted needles: searchsorted walks the store once
        at = np.empty(len(hashes), dtype=np.int64)
        at[order] = np.searchsorted(self._hashes, hashes[order])
        inside = at < len(self._hashes)
        candidates = np.flatnonzero(inside)
        equal = self._hashes[at[candidates]] == hashes[candidates]
        candidates = candidates[equal]
        if not len(candidates):
            return {}
        store, numbers = self._stored()
        found: dict[int, int] = {}
        for index in candidates.tolist():
            key = ids[index].as_py()
            j = int(at[index])
            while j < len(self._hashes) and self._hashes[j] == hashes[index]:
                where = int(self._where[j])
                if store[where].as_py() == key:
                    found[index] = int(numbers[where])
                    break
                j += 1
            if found and first_only:
                break
        return found


def all_distinct(ids: pa.Array, hashes: np.ndarray | None = None) -> bool:
    """Whether the strings of ``ids`` (no nulls; ``hashes``: their id_hashes) are all
    different."""
    ordered = np.sort(id_hashes(ids) if hashes is None else hashes)
    if not (ordered[1:] == ordered[:-1]).any():
        return True
    return pc.count_distinct(ids).as_py() == len(ids)
