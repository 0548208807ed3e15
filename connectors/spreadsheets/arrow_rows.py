"""The column-wise reading of fast_rows, for a block of rows that is already Arrow string
columns (csv_blocks): good rows stay Arrow arrays from the file to the dlt item.

Why: with the cells in Arrow, every per-cell step of fast_rows can be done once per
distinct cell text (``dictionary_encode``) or in one compute pass (the id and e-mail
patterns, the totals and repeated-header markers), and the values go into the item with
``take`` instead of Python lists. The decisions are fast_rows' own (the same
``ColumnParser`` statuses, caches and markers), and every row the column-wise path cannot
vouch for goes through ``EntityReader._row`` unchanged; its output is then put back in its
place, so rows, quarantine rows and their order are exactly the per-row reader's.

Rows read one by one while the block's other rows are taken column-wise must not depend on
each other: so the block goes to ``FastRows.chunk`` as lists of cells (file order, exact)
when a column-wise row's id repeats another row's or an earlier block's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors import values as v
from connectors.spreadsheets.fast_rows import BLANK, CACHE_LIMIT, SLOW, ColumnParser, FastRows
from connectors.spreadsheets.seen_ids import all_distinct, id_hashes

if TYPE_CHECKING:
    from connectors.spreadsheets.fast_rows import _Marker
    from connectors.spreadsheets.records import EntityReader, Issue

ARROW_TYPES = {
    "text": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "bool": pa.bool_(),
    "bigint": pa.int64(),
    "double": pa.float64(),
}


def to_arrow(values: list[Any], kind: pa.DataType) -> pa.Array:
    """An Arrow column of ``kind``. Text is converted with the type inferred, then checked:
    pyarrow converts a list of str ~40 times slower when told ``type=pa.string()``."""
    if kind == pa.string():
        try:
            inferred = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            inferred = None
        if inferred is not None and inferred.type == kind:
            return inferred
        if inferred is not None and inferred.type == pa.null():
            return inferred.cast(kind)
    return pa.array(values, type=kind)


class _Known:
    """One field's cells classified so far, as Arrow arrays: cells, statuses, values."""

    def __init__(self, kind: pa.DataType) -> None:
        self.kind = kind
        self.clear()

    def clear(self) -> None:
        self.cells = pa.array([], type=pa.string())
        self.status = np.empty(0, dtype=np.int8)
        self.values = pa.array([], type=self.kind)

    def add(self, parser: ColumnParser, cells: list[str]) -> None:
        if len(self.cells) + len(cells) > CACHE_LIMIT:  # bounded, as ColumnParser's own
            self.clear()
        pairs = [parser.classify(cell) for cell in cells]
        self.cells = pa.concat_arrays([self.cells, to_arrow(cells, pa.string())])
        self.status = np.concatenate(
            [self.status, np.fromiter((p[0] for p in pairs), dtype=np.int8, count=len(pairs))]
        )
        self.values = pa.concat_arrays([self.values, to_arrow([p[1] for p in pairs], self.kind)])


def _distinct(parser: ColumnParser, column: pa.Array, kind: pa.DataType) -> tuple[Any, pa.Array]:
    """Statuses (numpy int8) and values of a string column, each distinct text classified
    once in the file (kept, as Arrow arrays, for the next blocks)."""
    known = parser.__dict__.get("known")
    if known is None:
        known = parser.__dict__["known"] = _Known(kind)
    encoded = pc.dictionary_encode(column)
    dictionary = encoded.dictionary
    where = pc.index_in(dictionary, value_set=known.cells)
    if where.null_count:
        new = dictionary.filter(where.is_null()).to_pylist()
        if len(known.cells) + len(new) > CACHE_LIMIT:
            new = dictionary.to_pylist()
        known.add(parser, new)
        where = pc.index_in(dictionary, value_set=known.cells)
    rows = where.to_numpy(zero_copy_only=False)[encoded.indices.to_numpy(zero_copy_only=False)]
    return known.status[rows], Values(known.values, rows)


class Values:
    """A column's parsed values, taken only for the rows kept: ``array`` itself, or its
    values at ``rows`` (a field's classified cells, one per row of the block)."""

    def __init__(self, array: pa.Array, rows: Any = None) -> None:
        self.array = array
        self.rows = rows

    def at(self, index: Any) -> pa.Array:
        """The values of the block's rows ``index`` (numpy positions, in order)."""
        where = index if self.rows is None else self.rows[index]
        return self.array.take(pa.array(where))


def parse_column(parser: ColumnParser, column: pa.Array, kind: pa.DataType) -> tuple[Any, Values]:
    """``ColumnParser.column`` for an Arrow string column: statuses and parsed values."""
    if parser.accept is None:
        return _distinct(parser, column, kind)
    ok = pc.match_substring_regex(column, parser.accept)
    nulls = parser.reader.null_values
    if nulls:
        words = pa.array(sorted(nulls), type=pa.string())
        ok = pc.and_(ok, pc.invert(pc.is_in(pc.utf8_lower(column), value_set=words)))
    accepted = ok.to_numpy(zero_copy_only=False)
    rest = np.flatnonzero(~accepted)
    status = np.zeros(len(column), dtype=np.int8)
    if not len(rest):
        return status, Values(column)
    rest_status, rest_values = _distinct(parser, column.take(pa.array(rest)), kind)
    status[rest] = rest_status
    replaced = pc.replace_with_mask(column, pa.array(~accepted), rest_values.at(slice(None)))
    return status, Values(replaced)


def _marked(marker: _Marker, column: pa.Array) -> Any:
    """``_Marker.column`` for an Arrow string column."""
    marked = ~pc.match_substring_regex(column, marker.safe).to_numpy(zero_copy_only=False)
    where = np.flatnonzero(marked)
    if len(where):
        cells = column.take(pa.array(where)).to_pylist()
        marked[where] = [marker.test(cell) for cell in cells]
    return marked


class ArrowRows:
    """Reads Arrow blocks of string columns into tables of an EntityReader's good rows."""

    def __init__(self, reader: EntityReader, fast: FastRows, schema: pa.Schema) -> None:
        self.reader = reader
        self.fast = fast
        self.schema = schema

    def block(self, first: int, table: pa.Table, issues: list[Issue]) -> pa.Table | None:
        """The good rows of the block (rows ``first``...), its issues appended to
        ``issues``, in file order, exactly as ``EntityReader._row`` row by row would; None
        (with nothing read or changed) when the block must go row by row in order."""
        reader = self.reader
        count = table.num_rows
        if not reader.fields or table.num_columns < reader.width or not count:
            return None
        cells = [column.combine_chunks() for column in table.columns]
        slow = np.zeros(count, dtype=bool)
        blank = np.ones(count, dtype=bool)
        values: dict[str, Values] = {}
        for parser in self.fast.parsers:
            name = parser.fld.raw
            status, parsed = parse_column(
                parser, cells[parser.fld.index], self.schema.field(name).type
            )
            slow |= status == SLOW
            blank &= status == BLANK
            values[name] = parsed
        slow |= blank
        slow |= _marked(self.fast.totals, cells[0])
        slow |= _marked(self.fast.header, cells[reader.fields[0].index])
        taken = ~slow
        where_slow = np.flatnonzero(slow)
        numbers = np.arange(first, first + count, dtype=np.int64)
        ids = hashes = None
        if reader.id_index is not None:
            ids = values["source_id"].at(np.flatnonzero(taken))
            others = cells[reader.id_index].take(pa.array(where_slow)).to_pylist()
            texts = pa.array([v.cell_text(cell) for cell in others], type=pa.string())
            hashes = id_hashes(ids)
            if (
                not all_distinct(ids, hashes)
                or reader.seen_ids.overlaps(ids, hashes)
                or pc.any(pc.is_in(texts, value_set=ids)).as_py()
            ):
                return None
        side = self._slow_rows(first, table, where_slow, issues)
        if ids is not None:
            reader.seen_ids.add_block(ids, numbers[taken], hashes)
        kept_slow = np.asarray(side["_source_row"], dtype=np.int64) - first
        keep = taken.copy()
        keep[kept_slow] = True
        rows = np.flatnonzero(keep)
        kept = len(rows)
        mask = None
        if len(kept_slow):
            replace = np.zeros(count, dtype=bool)
            replace[kept_slow] = True
            mask = pa.array(replace[rows])
        out: dict[str, pa.Array] = {}
        for field in self.schema:
            name = field.name
            if name.startswith("_source_"):
                continue
            if name in values:
                column = values[name].at(rows)
            elif name in reader.constants:
                column = to_arrow([reader.constants[name]] * kept, field.type)
            else:
                column = pa.nulls(kept, field.type)
            if name == "consent_to_share" and reader.consent_policy is not None:
                column = self._consent(column, taken[rows])
            if mask is not None:
                column = pc.replace_with_mask(column, mask, to_arrow(side[name], field.type))
            out[name] = column
        out["_source_file"] = pa.repeat(reader.file_name, kept).cast(pa.string())
        out["_source_row"] = pa.array(numbers[rows])
        if reader.id_index is None:
            names = self.fast_natural_key()
            keys = zip(*(out[name].to_pylist() for name in names), strict=True)
            out["source_id"] = pa.array(
                [reader._derived_id(dict(zip(names, key, strict=True))) for key in keys],
                type=pa.string(),
            )
        return pa.Table.from_arrays([out[f.name] for f in self.schema], schema=self.schema)

    def fast_natural_key(self) -> tuple[str, ...]:
        from connectors.spreadsheets.records import NATURAL_KEY

        return NATURAL_KEY[self.reader.entity]

    def _slow_rows(
        self, first: int, table: pa.Table, where: Any, issues: list[Issue]
    ) -> dict[str, list[Any]]:
        """``EntityReader._row`` on each slow row, in order, into lists of their own.

        A derived id is worked out later for every kept row in file order, so the ones
        ``_row`` makes here are made against a scratch count and replaced.
        """
        reader = self.reader
        side = reader._empty()
        if not len(where):
            return side
        picked = table.take(pa.array(where))
        rows = zip(*(column.to_pylist() for column in picked.columns), strict=True)
        saved = reader._targets, reader._files, reader._numbers, reader.occurrences
        reader._targets = reader._bind(side)
        if reader.id_index is None:
            reader.occurrences = {}
        try:
            for index, cells in zip(where.tolist(), rows, strict=True):
                reader._row(first + index, list(cells), issues)
        finally:
            reader._targets, reader._files, reader._numbers, reader.occurrences = saved
        return side

    def _consent(self, answers: pa.Array, taken: Any) -> pa.Array:
        """``FastRows._consent`` for an Arrow column: the taken rows' answers counted per
        distinct answer (yes, no, none) and each decided once under the sharing policy."""
        reader = self.reader
        valid = answers.is_valid().to_numpy(zero_copy_only=False)
        yes = answers.fill_null(False).to_numpy(zero_copy_only=False)
        decided: dict[Any, bool] = {}
        groups = ((None, ~valid), (True, valid & yes), (False, valid & ~yes))
        for answer, rows in groups:
            n = int((rows & taken).sum())
            if not n:
                decided[answer] = False
                continue
            before = dict(reader.consent_counts)
            decided[answer] = reader._consent(answer)
            for key, total in reader.consent_counts.items():
                reader.consent_counts[key] = before.get(key, 0) + (total - before.get(key, 0)) * n
        result = np.where(~valid, decided[None], np.where(yes, decided[True], decided[False]))
        return pa.array(result, type=pa.bool_())
