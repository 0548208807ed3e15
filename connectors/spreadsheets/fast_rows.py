"""Column-wise reading of the common case: a chunk of rows parsed one distinct value at a
time, with every row the fast path cannot vouch for handed to the exact per-row reader.

Why: parsing cell by cell in Python cost ~20 µs a row (13-23 s for a million rows), and
most of it was spent re-reading the same postcodes, dates, phone numbers and names. Here
each column of a chunk is parsed once per distinct cell text (a cache that lives across
chunks), and a row is taken as it is only when every mapped cell parsed cleanly; a row
with any problem, blank required cell, all-blank cells, a possible totals or repeated
header row, a distrusted (unclosed quote) or short row goes through
:meth:`EntityReader._row` unchanged, in file order, so results are exactly the same.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors import values as v
from connectors.members import normalise_label
from connectors.spreadsheets.csv_guards import SuspectRow

if TYPE_CHECKING:
    from connectors.spreadsheets.records import EntityReader, Issue, _Field

OK, BLANK, SLOW = 0, 1, 2
# A field's cache is dropped when it grows past this many distinct cells (ids, e-mails:
# every value new), so memory stays bounded on a file of millions of rows.
CACHE_LIMIT = 200_000


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while one chunk is read and parsed.

    Why: a chunk keeps ~10,000 row lists alive at once, so the collector's allocation
    counter keeps firing and promoting them, and the full collections it then runs scan the
    whole heap: that was ~40% of the reading time. Nothing read here forms a cycle, and the
    previous state is restored before the chunk is handed on (never across a ``yield``).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class ColumnParser:
    """One mapped field: cell -> (status, value), cached per distinct text cell.

    The status says what ``EntityReader._row`` would do with the cell: OK (a value it
    would keep), BLANK (empty or a null word: the default is kept) or SLOW (a problem, or
    a cell whose row needs the exact path: a blank id, a required field left None).
    """

    def __init__(self, reader: EntityReader, fld: _Field) -> None:
        self.reader = reader
        self.fld = fld
        self.default = reader.defaults.get(fld.raw)
        # A blank id would let a null word through as an id (see EntityReader._row).
        self.slow_blank = fld.index == reader.id_index or (fld.required and self.default is None)
        self.status: dict[str, int] = {}
        self.value: dict[str, Any] = {}
        self.odd = 0  # cached cells whose status is not OK
        self.accept = ACCEPT.get(fld.name)

    def classify(self, raw: Any) -> tuple[int, Any]:
        """What the per-row reader would make of ``raw`` (see the class docstring)."""
        reader = self.reader
        try:
            if type(raw) is str:
                if (not raw or raw[0] in reader.special_first) and reader._blank_cell(raw):
                    return (SLOW if self.slow_blank else BLANK), self.default
            elif raw is None:
                return (SLOW if self.slow_blank else BLANK), self.default
            value = self.fld.parse(raw)
        except v.ValueProblem:
            return SLOW, None
        if value is None and (self.fld.required or self.fld.index == reader.id_index):
            return SLOW, None
        return OK, value

    def column(self, cells: tuple[Any, ...] | list[Any]) -> tuple[np.ndarray, list[Any]]:
        """Statuses and values of one column of a chunk, each distinct text parsed once."""
        if self.accept is not None:
            accepted = self._accepted(cells)
            if accepted is not None:
                return self._rest(cells, accepted)
        status, value = self.status, self.value
        try:  # the common case once the cache is warm: every cell seen before
            values = list(map(value.__getitem__, cells))
            if not self.odd:  # every cell cached is OK: no status to look up
                return np.zeros(len(cells), dtype=np.int8), values
            return (
                np.fromiter(map(status.__getitem__, cells), dtype=np.int8, count=len(cells)),
                values,
            )
        except KeyError:
            pass
        if len(status) > CACHE_LIMIT:
            status.clear()
            value.clear()
            self.odd = 0
        missing = set(cells).difference(status)
        for raw in missing:
            if type(raw) is str:
                status[raw], value[raw] = self.classify(raw)
                self.odd += status[raw] != OK
        if any(type(raw) is not str for raw in missing):
            # Workbook cells (1, 1.0 and True are equal keys): parsed one by one, uncached.
            pairs = [(status[c], value[c]) if type(c) is str else self.classify(c) for c in cells]
            return (
                np.fromiter((p[0] for p in pairs), dtype=np.int8, count=len(pairs)),
                [p[1] for p in pairs],
            )
        return (
            np.fromiter(map(status.__getitem__, cells), dtype=np.int8, count=len(cells)),
            list(map(value.__getitem__, cells)),
        )

    def _accepted(self, cells: tuple[Any, ...] | list[Any]) -> np.ndarray | None:
        """Cells the field's pattern vouches for (parsed value = the cell itself), found
        in one Arrow pass; None when the column is not all text (a workbook's cells)."""
        try:
            array = pa.array(cells)  # inferred: ~40 times faster than type=pa.string()
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None
        if array.type != pa.string():
            return None
        ok = pc.match_substring_regex(array, self.accept)
        if self.reader.null_values:
            nulls = pa.array(sorted(self.reader.null_values), type=pa.string())
            ok = pc.and_(ok, pc.invert(pc.is_in(pc.utf8_lower(array), value_set=nulls)))
        return ok.fill_null(False).to_numpy(zero_copy_only=False)

    def _rest(
        self, cells: tuple[Any, ...] | list[Any], accepted: np.ndarray
    ) -> tuple[np.ndarray, list[Any]]:
        """Statuses and values when ``accepted`` cells are taken as they are: the others
        (few: blanks, oddities, problems) are classified one by one."""
        status = np.zeros(len(cells), dtype=np.int8)
        values = list(cells)
        for index in np.flatnonzero(~accepted).tolist():
            status[index], values[index] = self.classify(cells[index])
        return status, values


# Cells whose parsed value is the cell itself, checked per column in Arrow (see
# ColumnParser.accept): plain ASCII ids (parse_id keeps them as written) and lower-case
# e-mail addresses, a strict subset of values.EMAIL_PATTERN without '..'.
_ID_CELL = r"^[A-Za-z0-9]+$"
# The local part may also hold Latin-1's lower-case letters (ß, à-ö, ø-ÿ): precomposed, so
# already NFC, and their own lower case, as parse_email would leave them.
_LOCAL = "[a-z0-9_+\u00df-\u00f6\u00f8-\u00ff-]+"
_EMAIL_CELL = f"^{_LOCAL}(?:\\.{_LOCAL})*@[a-z0-9-]+(?:\\.[a-z0-9-]+)*\\.[a-z]{{2,}}$"
ACCEPT = {"source_id": _ID_CELL, "person_source_id": _ID_CELL, "email": _EMAIL_CELL}


class _Marker:
    """Per cell of one column: could this row be a non-data row? Cells matching ``safe``
    (an ASCII first character that rules it out) are cleared in one Arrow pass; the
    others, and every cell of a column that is not all text, get ``test``."""

    def __init__(self, test: Callable[[Any], bool], safe: str) -> None:
        self.test = test
        self.safe = safe

    def column(self, cells: tuple[Any, ...] | list[Any]) -> np.ndarray:
        try:
            array = pa.array(cells)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            array = None
        if array is None or array.type != pa.string():
            return np.fromiter(map(self.test, cells), dtype=bool, count=len(cells))
        marked = ~pc.match_substring_regex(array, self.safe).fill_null(False).to_numpy(
            zero_copy_only=False
        )
        for index in np.flatnonzero(marked).tolist():
            marked[index] = self.test(cells[index])
        return marked


def _may_be_totals(first: Any) -> bool:
    """A superset of the rows ``EntityReader._non_data`` skips as totals: the first cell
    is empty (the first non-empty one is then elsewhere) or starts like 'Total'."""
    if first is None or first == "":
        return True
    return type(first) is str and first.lstrip()[:1] in "tTgGsS"


# First characters that rule out a totals row (not a space, not t/g/s: Total, Grand
# total, Subtotal), and, less the header's own first letter, a repeated header row.
_NOT_TOTALS = "^[0-9A-FH-RU-Za-fh-ru-z]"
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class FastRows:
    """Reads chunks of (row number, cells) into an EntityReader's current batch."""

    def __init__(self, reader: EntityReader) -> None:
        self.reader = reader
        self.parsers = [ColumnParser(reader, f) for f in reader.fields]
        self.totals = _Marker(_may_be_totals, _NOT_TOTALS)
        lead, label = reader.header_lead, reader.header_labels[0] if reader.fields else ""

        def may_be_header(cell: Any) -> bool:
            return (
                type(cell) is str
                and cell.lstrip()[:1].casefold() == lead
                and normalise_label(cell) == label
            )

        others = "".join(ch for ch in _ALNUM if ch.casefold() != lead)
        self.header = _Marker(may_be_header, f"^[{others}]")
        self.indexes = [f.index for f in reader.fields]
        self.getter = itemgetter(0, *self.indexes)

    def chunk(self, numbers: list[int], rows: list[Any], issues: list[Issue]) -> None:
        """Append the chunk's good rows to the reader's batch and its issues to ``issues``,
        in file order, exactly as ``EntityReader._row`` row by row would."""
        reader = self.reader
        if not reader.fields:
            for number, cells in zip(numbers, rows, strict=True):
                reader._row(number, cells, issues)
            return
        width = reader.width
        regular = min(map(len, rows)) >= width and SuspectRow not in set(map(type, rows))
        odd = (
            []
            if regular
            else [
                i
                for i, cells in enumerate(rows)
                if cells.__class__ is SuspectRow or len(cells) < width
            ]
        )
        if odd:
            filler, skip = [""] * width, set(odd)
            picked = [filler if i in skip else r for i, r in enumerate(rows)]
        else:
            picked = rows
        columns = list(zip(*map(self.getter, picked), strict=True))
        slow = np.zeros(len(rows), dtype=bool)
        if odd:
            slow[odd] = True
        blank = np.ones(len(rows), dtype=bool)
        values: dict[str, list[Any]] = {}
        for parser, cells in zip(self.parsers, columns[1:], strict=True):
            status, parsed = parser.column(cells)
            slow |= status == SLOW
            blank &= status == BLANK
            values[parser.fld.raw] = parsed
        slow |= blank
        slow |= self.totals.column(columns[0])
        slow |= self.header.column(columns[1])
        start = 0
        for index in np.flatnonzero(slow).tolist():
            if index > start:
                self._take(numbers, values, start, index, rows, issues)
            reader._row(numbers[index], rows[index], issues)
            start = index + 1
        if start < len(rows):
            self._take(numbers, values, start, len(rows), rows, issues)

    def _take(
        self,
        numbers: list[int],
        values: dict[str, list[Any]],
        start: int,
        stop: int,
        rows: list[Any],
        issues: list[Issue],
    ) -> None:
        """Rows start..stop, every cell clean: only the id repeat check is left, done for
        the run at once (falling back row by row when the run repeats an id)."""
        reader = self.reader
        whole = start == 0 and stop == len(numbers)
        run = values if whole else {k: col[start:stop] for k, col in values.items()}
        count = stop - start
        if reader.id_index is not None:
            ids = run["source_id"]
            seen = reader.seen_ids
            if len(set(ids)) != count or not seen.isdisjoint(ids):
                for i in range(start, stop):
                    reader._row(numbers[i], rows[i], issues)
                return
            seen.update(zip(ids, numbers[start:stop], strict=True))
        for name, value in reader.constants.items():
            run[name] = [value] * count
        if reader.consent_policy is not None:
            run["consent_to_share"] = self._consent(run.get("consent_to_share"), count)
        if reader.id_index is None:
            names = _natural_key(reader)
            keys = zip(*(run.get(n, [None] * count) for n in names), strict=True)
            run["source_id"] = [reader._derived_id(dict(zip(names, k, strict=True))) for k in keys]
        for name, target in reader._targets:
            column = run.get(name)
            target.extend([None] * count if column is None else column)
        reader._files.extend([reader.file_name] * count)
        reader._numbers.extend(numbers[start:stop])

    def _consent(self, answers: list[Any] | None, count: int) -> list[bool]:
        """``EntityReader._consent`` for a run: each distinct answer once, counted n times."""
        reader = self.reader
        if answers is None:
            answers = [None] * count
        decided: dict[Any, bool] = {}
        for answer, n in Counter(answers).items():
            before = Counter(reader.consent_counts)
            decided[answer] = reader._consent(answer)
            for key, total in reader.consent_counts.items():
                reader.consent_counts[key] = before[key] + (total - before[key]) * n
        return list(map(decided.__getitem__, answers))


def _natural_key(reader: EntityReader) -> tuple[str, ...]:
    from connectors.spreadsheets.records import NATURAL_KEY

    return NATURAL_KEY[reader.entity]
