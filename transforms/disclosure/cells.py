"""The counts of a release as cells: what a reader sees, and (for the audit) what is true.

Why a flat list: the relations a reader can use cut across rows, measures and tables (an
area total, a code bound, reach against outcomes), so the audit and the suppression work on
one numbered list of cells rather than on tables. A cell is one count in one row of one
disclosure-controlled table; a null that is not flagged as withheld (``engagements`` on an
outcome-code row) does not apply to its row and is not a cell.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from transforms.published_schema import published_table, suppressed_flag

# Tables whose counts are disclosure-controlled, in the order cells are numbered.
CONTROLLED_TABLES = ("outcomes_summary", "cross_org_reach", "organisation_summary")


@dataclass(frozen=True)
class CellRef:
    """Where a cell is: table, the row's primary key values, measure."""

    table: str
    key: tuple[Any, ...]
    measure: str

    def label(self) -> str:
        """``table(k=v, ...).measure``: names the cell, never its value."""
        names = published_table(self.table).primary_key
        keys = ", ".join(f"{n}={v}" for n, v in zip(names, self.key, strict=True))
        return f"{self.table}({keys}).{self.measure}"


@dataclass
class Cells:
    """Every count cell of a release.

    ``shown[i]`` is the published value (None when withheld); ``hidden[i]`` whether it is
    withheld; ``truth[i]`` the value before disclosure control when known (the hub's own
    audit), or None throughout (a reader's view).
    """

    refs: list[CellRef] = field(default_factory=list)
    shown: list[int | None] = field(default_factory=list)
    hidden: list[bool] = field(default_factory=list)
    truth: list[int | None] = field(default_factory=list)
    # "count" (a published count), or "change" (a revised count minus an earlier release's,
    # never published itself but computed by any reader holding both).
    role: list[str] = field(default_factory=list)
    # Cells of an earlier release: already published, so control can never withhold them.
    fixed: list[bool] = field(default_factory=list)
    index: dict[CellRef, int] = field(default_factory=dict)
    # table -> primary key -> measure -> cell number
    rows: dict[str, dict[tuple[Any, ...], dict[str, int]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.refs)

    def at(self, table: str, key: tuple[Any, ...], measure: str) -> int | None:
        """The cell number, or None when the row is absent or the measure does not apply."""
        return self.rows.get(table, {}).get(key, {}).get(measure)

    def has_row(self, table: str, key: tuple[Any, ...]) -> bool:
        return key in self.rows.get(table, {})

    def hide(self, cell: int) -> None:
        self.hidden[cell] = True
        self.shown[cell] = None

    @classmethod
    def from_counts(cls, tables: Mapping[str, pa.Table]) -> Cells:
        """Cells of tables before disclosure control: everything true, nothing withheld."""
        plain = {
            name: table.drop_columns([c for c in table.column_names if c.endswith("_suppressed")])
            for name, table in tables.items()
        }
        cells = cls.from_published(plain, plain)
        if any(v is not None and v < 0 for v in cells.truth):
            c = next(i for i, v in enumerate(cells.truth) if v is not None and v < 0)
            raise ValueError(f"negative count in {cells.refs[c].table}.{cells.refs[c].measure}")
        return cells

    @classmethod
    def from_published(
        cls, tables: Mapping[str, pa.Table], truth: Mapping[str, pa.Table] | None = None
    ) -> Cells:
        """Cells as a reader sees them (values and ``_suppressed`` flags of published tables),
        with the true values from ``truth`` (the uncontrolled tables) when given."""
        cells = cls()
        for name in CONTROLLED_TABLES:
            if name not in tables:
                continue
            schema = published_table(name)
            table = tables[name]
            keys = _keys(table, schema.primary_key)
            true_values: dict[tuple[Any, ...], dict[str, Any]] = {}
            if truth is not None and name in truth:
                t = truth[name]
                t_keys = _keys(t, schema.primary_key)
                for m in schema.measures:
                    for k, v in zip(t_keys, t.column(m).to_pylist(), strict=True):
                        true_values.setdefault(k, {})[m] = v
            for measure in schema.measures:
                values = table.column(measure).to_pylist()
                flag = suppressed_flag(measure)
                flags = (
                    table.column(flag).to_pylist()
                    if flag in table.column_names
                    else [False] * table.num_rows
                )
                for key, value, withheld in zip(keys, values, flags, strict=True):
                    if value is None and not withheld:
                        continue  # does not apply to this row
                    real = true_values.get(key, {}).get(measure) if truth is not None else None
                    cells._add(
                        CellRef(name, key, measure),
                        None if withheld else int(value),
                        bool(withheld),
                        None if real is None else int(real),
                    )
            for key in keys:
                cells.rows.setdefault(name, {}).setdefault(key, {})
        return cells

    def _add(
        self,
        ref: CellRef,
        shown: int | None,
        hidden: bool,
        truth: int | None,
        *,
        role: str = "count",
        fixed: bool = False,
    ) -> int:
        if ref in self.index:
            raise ValueError(f"duplicate row in {ref.table}: {ref.label()}")
        i = len(self.refs)
        self.refs.append(ref)
        self.shown.append(shown)
        self.hidden.append(hidden)
        self.truth.append(truth)
        self.role.append(role)
        self.fixed.append(fixed)
        self.index[ref] = i
        if role == "count":
            self.rows.setdefault(ref.table, {}).setdefault(ref.key, {})[ref.measure] = i
        return i

    def lower(self, cell: int) -> float:
        """The least value the cell can take: 0 for a count; a change can be negative."""
        return 0.0 if self.role[cell] == "count" else -math.inf

    def add_release(
        self,
        tables: Mapping[str, pa.Table],
        truth: Mapping[str, pa.Table] | None,
        tag: str,
        periods: Iterable[str],
    ) -> list[tuple[int, int, int]]:
        """Add an earlier release's cells of ``periods`` (as published, with their true
        values when known), fixed, under period ``<period>@<tag>``, and one change cell per
        count that the current cells also have: ``(change, current, earlier)`` cells are
        returned; the relation tying them is ``change = current - earlier``.

        The period tag keeps the earlier version's relations apart from the current ones
        (each version is a full set of counts of its own)."""
        wanted = set(periods)
        earlier = Cells.from_published(
            {n: t for n, t in tables.items() if n != "organisation_summary"}, truth
        )
        pairs: list[tuple[int, int, int]] = []
        for c, ref in enumerate(earlier.refs):
            if ref.key[0] not in wanted:
                continue
            tagged = CellRef(ref.table, (f"{ref.key[0]}@{tag}", *ref.key[1:]), ref.measure)
            old = self._add(
                tagged, earlier.shown[c], earlier.hidden[c], earlier.truth[c], fixed=True
            )
            current = self.index.get(ref)
            if current is None:
                continue
            true_change = (
                None
                if self.truth[current] is None or earlier.truth[c] is None
                else self.truth[current] - earlier.truth[c]
            )
            change = self._add(
                CellRef(ref.table, (f"{ref.key[0]} change since {tag}", *ref.key[1:]), ref.measure),
                None,
                True,
                true_change,
                role="change",
                fixed=True,
            )
            pairs.append((change, current, old))
        return pairs

    def to_tables(self, tables: Mapping[str, pa.Table]) -> dict[str, pa.Table]:
        """``tables`` with withheld cells emptied and every ``_suppressed`` flag set, in the
        columns and order of their published schema."""
        out: dict[str, pa.Table] = {}
        for name, table in tables.items():
            if name not in CONTROLLED_TABLES:
                out[name] = table
                continue
            schema = published_table(name)
            keys = _keys(table, schema.primary_key)
            result = table
            for measure in schema.measures:
                original = table.column(measure).to_pylist()
                values: list[int | None] = []
                flags: list[bool] = []
                for key, value in zip(keys, original, strict=True):
                    cell = self.at(name, key, measure)
                    withheld = cell is not None and self.hidden[cell]
                    values.append(None if withheld or value is None else int(value))
                    flags.append(withheld)
                result = _set(result, measure, pa.array(values, pa.int64()))
                result = _set(result, suppressed_flag(measure), pa.array(flags, pa.bool_()))
            out[name] = schema.conform(result)
        return out


def _keys(table: pa.Table, key_columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    columns = [table.column(k).to_pylist() for k in key_columns]
    return list(zip(*columns, strict=True)) if columns else [()] * table.num_rows


def _set(table: pa.Table, name: str, array: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, array)
    return table.append_column(name, array)


def read_release_csvs(folder: Any) -> dict[str, pa.Table]:
    """The controlled tables of a release folder, read from its CSV files only (what any
    reader holds), typed by the published schema. Tables a release lacks are left out."""
    from pathlib import Path

    import pyarrow.csv as pcsv

    out: dict[str, pa.Table] = {}
    for name in CONTROLLED_TABLES:
        path = Path(folder) / f"{name}.csv"
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as fh:
            header = fh.readline().strip().split(",")
        types = {
            f.name: {"integer": pa.int64(), "boolean": pa.bool_()}.get(f.type, pa.string())
            for f in published_table(name).fields
            if f.name in header and f.type in ("integer", "boolean", "string")
        }
        out[name] = pcsv.read_csv(
            path,
            convert_options=pcsv.ConvertOptions(
                column_types=types,
                strings_can_be_null=False,
                true_values=["true"],
                false_values=["false"],
            ),
        )
    return out
