"""Rows of cells -> typed raw records plus quarantine rows, per canonical entity.

This is where each mapped column gets its parser, where a row is kept, kept with a value
dropped (warning), rejected (error) or skipped (totals rows, repeated headers), and where
ids are derived when a member's file has none. The dlt source and ``hub check`` both read
files through :func:`read_entity`, so what the check reports is exactly what would load.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from itertools import islice
from operator import itemgetter
from pathlib import Path
from typing import Any

import pyarrow as pa

from connectors import values as v
from connectors.errors import SpreadsheetError
from connectors.members import Member, normalise_label
from connectors.rules import load_rule
from connectors.spreadsheets import csv_blocks
from connectors.spreadsheets.arrow_rows import ARROW_TYPES, ArrowRows
from connectors.spreadsheets.csv_guards import SuspectRow
from connectors.spreadsheets.fast_rows import FastRows, gc_paused
from connectors.spreadsheets.reading import OpenedTable, Row, open_table, table_files
from connectors.spreadsheets.seen_ids import SeenIds

ENTITIES = ("person", "engagement", "service_delivery", "outcome")

# Raw column -> dlt data type. The names are a contract with transforms/sql/canonical.
RAW_COLUMNS: dict[str, dict[str, str]] = {
    "person": {
        "source_id": "text",
        "given_name": "text",
        "family_name": "text",
        "birth_date": "date",
        "email": "text",
        "phone": "text",
        "postcode": "text",
        "consent_to_share": "bool",
        "source_updated_at": "timestamp",
        "_source_file": "text",
        "_source_row": "bigint",
    },
    "engagement": {
        "source_id": "text",
        "person_source_id": "text",
        "programme": "text",
        "status": "text",
        "start_date": "date",
        "end_date": "date",
        "source_updated_at": "timestamp",
        "_source_file": "text",
        "_source_row": "bigint",
    },
    "service_delivery": {
        "source_id": "text",
        "person_source_id": "text",
        "programme": "text",
        "service_name": "text",
        "delivered_on": "date",
        "quantity": "double",
        "unit": "text",
        "source_updated_at": "timestamp",
        "_source_file": "text",
        "_source_row": "bigint",
    },
    "outcome": {
        "source_id": "text",
        "person_source_id": "text",
        "programme": "text",
        "outcome": "text",
        "status": "text",
        "measured_on": "date",
        "value": "double",
        "source_updated_at": "timestamp",
        "_source_file": "text",
        "_source_row": "bigint",
    },
    "programme": {"source_id": "text", "name": "text", "outcome_area": "text"},
}
QUARANTINE_COLUMNS: dict[str, str] = {
    "entity": "text",
    "source_file": "text",
    "source_row": "bigint",
    "source_id": "text",
    "column_name": "text",
    "raw_value": "text",
    "reason": "text",
    "rule": "text",
    "severity": "text",
}

# Canonical field (as mapped in YAML) -> raw column, where the two differ.
RAW_NAME = {"updated_at": "source_updated_at"}
DATE_FIELDS = frozenset({"birth_date", "start_date", "end_date", "delivered_on", "measured_on"})
# Fields whose unreadable value rejects the row even when the field is optional: a wrong
# date or a mangled id would otherwise load as a different record, not a missing value.
REJECT_ON_ERROR = DATE_FIELDS | {"source_id", "person_source_id"}
NUMBER_FIELDS = frozenset({"quantity", "value"})
# First characters of a spreadsheet error value (#DIV/0!, Err:502): one cheap test per cell.
_ERROR_START = frozenset("#E")
# Natural key of rows without a source_id column: what makes two rows the same event.
NATURAL_KEY = {
    "engagement": ("person_source_id", "programme", "start_date"),
    "service_delivery": ("person_source_id", "programme", "delivered_on", "service_name"),
    "outcome": ("person_source_id", "programme", "outcome", "measured_on"),
}
_TOTALS = re.compile(r"^(?:grand\s+|sub\s*-?\s*)?totals?\b", re.IGNORECASE)
# File rows read per chunk (and good rows per Arrow item at most): 50,000 cost ~0.75 s less
# than 10,000 on a million rows (fewer per-chunk Arrow calls and dlt items), for ~70 MB more
# peak memory (benchmarks/RESULTS.md).
DEFAULT_CHUNK_ROWS = 50_000


@dataclass(frozen=True)
class Issue:
    """One quarantine row: a rejected row, a dropped value or a skipped non-data row."""

    entity: str
    source_file: str
    source_row: int
    source_id: str | None
    column_name: str | None
    raw_value: str | None
    reason: str
    severity: str  # error | warning | skipped
    code: str  # short machine key (invalid_date, duplicate_id, ...) for summaries
    field: str | None = None

    def as_row(self) -> dict[str, Any]:
        """The quarantine table's columns (see QUARANTINE_COLUMNS)."""
        return {
            "entity": self.entity,
            "source_file": self.source_file,
            "source_row": self.source_row,
            "source_id": self.source_id,
            "column_name": self.column_name,
            "raw_value": self.raw_value,
            "reason": self.reason,
            "rule": load_rule(self.code),
            "severity": self.severity,
        }


@dataclass
class Batch:
    """Good rows, column-wise, and the issues met while reading them: Python lists, or an
    Arrow table (``table``, RAW_COLUMNS' types) when they were read as Arrow columns."""

    lists: dict[str, list[Any]]
    issues: list[Issue] = field(default_factory=list)
    table: pa.Table | None = None

    @cached_property
    def columns(self) -> dict[str, list[Any]]:
        """The good rows as Python lists per raw column (from ``table`` when set)."""
        if self.table is None:
            return self.lists
        return {name: self.table.column(name).to_pylist() for name in self.table.column_names}

    @property
    def row_count(self) -> int:
        """Number of good rows in the batch."""
        if self.table is not None:
            return self.table.num_rows
        return len(self.lists["_source_row"])


Parser = Callable[[Any], Any]


@dataclass(frozen=True)
class _Field:
    name: str  # canonical field name from ENTITY_FIELDS
    raw: str  # raw column name
    index: int
    header: str
    parse: Parser
    required: bool
    reject_on_error: bool  # dates: an unreadable date rejects the row even when optional
    on_error: Any = None  # value kept when a warning drops the cell (consent: False)


def decimal_separator(member: Member, entity: str) -> v.DecimalSeparator:
    """The table's decimal separator, else the member's, else None (read per column)."""
    conn = member.connector
    return conn.tables[entity].decimal_separator or conn.decimal_separator


def _parsers(member: Member, entity: str) -> dict[str, Parser]:
    conn = member.connector
    order = conn.date_order
    config = member.config_path.name
    region = conn.phone_region
    decimal = decimal_separator(member, entity)

    def number_parser(value: Any) -> Any:
        return v.parse_number(value, decimal, config)

    def date_parser(value: Any) -> Any:
        return v.parse_date(value, order, config)

    today = date.today()  # once per read, not once per row

    def birth_parser(value: Any) -> Any:
        return v.parse_birth_date(value, order, config, today)

    def timestamp_parser(value: Any) -> Any:
        return v.parse_datetime(value, order, config)

    sharing = member.sharing
    return {
        "source_id": v.parse_id,
        "person_source_id": v.parse_id,
        "given_name": v.parse_name,
        "family_name": v.parse_name,
        "birth_date": birth_parser,
        "email": v.parse_email,
        "phone": lambda value: v.parse_phone(value, region),
        "postcode": lambda value: v.parse_postcode(value, region),
        "consent_to_share": v.consent_parser(
            sharing.consent, sharing.consent_yes, sharing.consent_no, config
        ),
        "updated_at": timestamp_parser,
        "programme": v.parse_label,
        "status": v.parse_label,
        "outcome": v.parse_label,
        "service_name": v.parse_label,
        "unit": v.parse_label,
        "quantity": number_parser,
        "value": number_parser,
        "start_date": date_parser,
        "end_date": date_parser,
        "delivered_on": date_parser,
        "measured_on": date_parser,
    }


def _fields(member: Member, entity: str, opened: OpenedTable) -> list[_Field]:
    from connectors.members import ENTITY_FIELDS

    table = member.connector.tables[entity]
    required = {*ENTITY_FIELDS[entity]["required"], *table.required}
    parsers = _parsers(member, entity)
    return [
        _Field(
            name=name,
            raw=RAW_NAME.get(name, name),
            index=index,
            header=opened.headers[index],
            parse=parsers[name],
            required=name in required,
            reject_on_error=name in REJECT_ON_ERROR,
            on_error=False if name == "consent_to_share" else None,
        )
        for name, index in opened.columns.items()
    ]


def _defaults(member: Member, entity: str, opened: OpenedTable) -> dict[str, Any]:
    """Raw column -> parsed default value; a default that does not parse is the member's
    config mistake, refused before any row is read."""
    parsers = _parsers(member, entity)
    parsed: dict[str, Any] = {}
    for name, value in member.connector.tables[entity].defaults.items():
        try:
            parsed[RAW_NAME.get(name, name)] = parsers[name](value)
        except v.ValueProblem as problem:
            raise SpreadsheetError(
                member.org_id,
                str(opened.path),
                f"{entity} table: the default for {name} cannot be read ({problem.reason})",
                f"correct connector.tables.{entity}.defaults.{name} in {member.config_path.name}",
            ) from None
    return parsed


class EntityReader:
    """Turns the rows of one opened table into batches of typed records and issues."""

    def __init__(
        self, member: Member, entity: str, opened: OpenedTable, chunk_rows: int = DEFAULT_CHUNK_ROWS
    ) -> None:
        self.member = member
        self.entity = entity
        self.opened = opened
        self.chunk_rows = chunk_rows
        self.file_name = opened.path.name
        self.fields = _fields(member, entity, opened)
        self.raw_columns = list(RAW_COLUMNS[entity])
        self.id_field = "source_id" if entity == "person" else "person_source_id"
        self.id_index = opened.columns.get("source_id")
        self.defaults = _defaults(member, entity, opened)
        # Constants: fields with a default and no column, the same on every row.
        self.constants = {
            raw: value
            for raw, value in self.defaults.items()
            if raw not in {f.raw for f in self.fields}
        }
        nulls = member.connector.null_values
        self.null_values = frozenset(v.clean_text(n).casefold() for n in nulls)
        # First characters that send a text cell the slow way (see _blank_cell).
        self.special_first = frozenset(
            {*v.BLANK_EDGE, *_ERROR_START}
            | {ch for n in self.null_values for ch in (n[:1], n[:1].upper(), n[:1].lower())}
        )
        # Decimal separator each number column settles on, read from its other values
        # when an ambiguous number (1,234) first needs it: field -> "." | "," | None.
        self.conventions: dict[str, tuple[str | None, str]] = {}
        self.id_field_spec = next((f for f in self.fields if f.name == "source_id"), None)
        self.plan = [(f, f.index, f.parse, f.raw) for f in self.fields]
        self.required = [f for f in self.fields if f.required]
        self._targets: list[tuple[str, list[Any]]] = []
        self._files: list[Any] = []
        self._numbers: list[Any] = []
        self.header_labels = [normalise_label(f.header) for f in self.fields]
        self.header_lead = self.fields[0].header.lstrip()[:1].casefold() if self.fields else ""
        self.width = max((f.index for f in self.fields), default=0) + 1
        self.seen_ids = SeenIds()
        self.occurrences: dict[str, int] = {}
        self.consent_policy = member.sharing.consent if entity == "person" else None
        # What the sharing policy did to the answers read (for hub check): see _consent.
        self.consent_counts: Counter[str] = Counter()

    def _empty(self) -> dict[str, list[Any]]:
        return {name: [] for name in self.raw_columns}

    def batches(self) -> Iterator[Batch]:
        """Read the whole table lazily, ``chunk_rows`` file rows at a time (see fast_rows;
        a CSV file in blocks of Arrow columns where it can, see csv_blocks); the last batch
        is always yielded, even empty, so every table gets an item."""
        data = self.opened.csv_data
        if data is not None and self.fields:
            yield from self._block_batches(data)
            return
        fast = FastRows(self)
        source = self.opened.rows()
        while True:
            columns, issues = self._empty(), []
            self._targets = self._bind(columns)
            with gc_paused():
                chunk = list(islice(source, self.chunk_rows))
                if chunk:
                    numbers = list(map(itemgetter(0), chunk))
                    fast.chunk(numbers, list(map(itemgetter(1), chunk)), issues)
            if len(chunk) < self.chunk_rows:
                yield Batch(columns, issues)
                return
            if columns["_source_row"] or issues:
                yield Batch(columns, issues)

    def _block_batches(self, data: csv_blocks.CsvData) -> Iterator[Batch]:
        """A CSV file's rows from csv_blocks: an Arrow block's good rows stay an Arrow
        table (arrow_rows); rows read by Python's csv reader go through fast_rows."""
        fast = FastRows(self)
        schema = pa.schema(
            [pa.field(n, ARROW_TYPES[k]) for n, k in RAW_COLUMNS[self.entity].items()]
        )
        arrow = ArrowRows(self, fast, schema)
        last: Batch | None = None
        for block in csv_blocks.blocks(data, self.chunk_rows):
            columns, issues = self._empty(), []
            self._targets = self._bind(columns)
            table = None
            with gc_paused():
                if isinstance(block, csv_blocks.ArrowBlock):
                    table = arrow.block(block.first, block.table, issues)
                    if table is None:
                        fast.chunk(*block.rows(), issues)
                else:
                    fast.chunk(block.numbers, block.rows, issues)
            batch = Batch(columns, issues, table)
            if batch.row_count or issues:
                if last is not None:
                    yield last
                last = batch
        yield last if last is not None else Batch(self._empty(), [])

    def _bind(self, columns: dict[str, list[Any]]) -> list[tuple[str, list[Any]]]:
        """(raw column, its output list) for the value columns, looked up once per batch."""
        self._files = columns["_source_file"]
        self._numbers = columns["_source_row"]
        return [(n, columns[n]) for n in self.raw_columns if not n.startswith("_source_")]

    def _issue(
        self,
        number: int,
        source_id: str | None,
        fld: _Field | None,
        raw: Any,
        problem: v.ValueProblem,
        severity: str,
    ) -> Issue:
        text = None if raw is None else (v.cell_text(raw) or None)
        return Issue(
            entity=self.entity,
            source_file=self.file_name,
            source_row=number,
            source_id=source_id,
            column_name=None if fld is None else fld.header,
            raw_value=text,
            reason=problem.reason,
            severity=severity,
            code=problem.code,
            field=None if fld is None else fld.name,
        )

    def _non_data(self, number: int, cells: Row) -> Issue | None:
        """Totals rows and repeated header rows: skipped, never loaded as data."""
        first = (
            cells[0]
            if cells and cells[0] != ""
            else next((c for c in cells if c != "" and c is not None), None)
        )
        if (
            isinstance(first, str)
            and first.lstrip()[:1] in "tTgGsS"
            and _TOTALS.match(first.strip())
        ):
            id_index = self.opened.columns.get(self.id_field)
            id_cell = cells[id_index] if id_index is not None else ""
            if v.cell_text(id_cell) in ("", first.strip()):
                in_id = id_index is not None and id_cell == first
                id_fld = next((f for f in self.fields if f.name == self.id_field), None)
                return self._issue(
                    number,
                    None,
                    id_fld if in_id else None,
                    first,
                    v.ValueProblem(
                        "totals_row",
                        "a totals row, not a record; it is skipped (you may leave it or remove it)",
                    ),
                    "skipped",
                )
        lead = cells[self.fields[0].index]
        if (
            type(lead) is str
            and lead.lstrip()[:1].casefold() == self.header_lead
            and normalise_label(lead) == self.header_labels[0]
        ):
            mapped = [normalise_label(v.cell_text(cells[f.index])) for f in self.fields]
            if mapped == self.header_labels:
                return self._issue(
                    number,
                    None,
                    None,
                    None,
                    v.ValueProblem(
                        "repeated_header",
                        "the header row appears again here; it is skipped (you may remove it)",
                    ),
                    "skipped",
                )
        return None

    def _row(self, number: int, cells: Row, issues: list[Issue]) -> None:
        if cells.__class__ is SuspectRow:
            self._suspect(number, cells, issues)
            return
        if len(cells) < self.width:
            cells = [*cells, *([""] * (self.width - len(cells)))]
        values: dict[str, Any] = {}
        errors: list[Issue] | None = None
        warnings: list[Issue] | None = None
        id_value: str | None = None
        if self.id_index is not None:
            id_value = v.cell_text(cells[self.id_index]) or None
        blank = True
        defaults = self.defaults
        special = self.special_first
        for fld, index, parse, raw_name in self.plan:
            raw = cells[index]
            try:
                if type(raw) is str:
                    # The first character settles ordinary text: a cell that is blank once
                    # cleaned starts with a space or an invisible character, a null word
                    # or an error value with its own first letters; those go the slow way.
                    if (not raw or raw[0] in special) and self._blank_cell(raw):
                        values[raw_name] = defaults.get(raw_name)
                        continue
                elif raw is None:
                    values[raw_name] = defaults.get(raw_name)
                    continue
                blank = False
                values[raw_name] = parse(raw)
            except v.ValueProblem as problem:
                blank = False
                if problem.code == "ambiguous_number":
                    settled = self._settle_number(fld, raw, problem)
                    if type(settled) is float:
                        values[raw_name] = settled
                        continue
                    problem = settled
                if fld.required or fld.reject_on_error:
                    errors = errors or []
                    errors.append(self._issue(number, id_value, fld, raw, problem, "error"))
                else:
                    warnings = warnings or []
                    warnings.append(self._issue(number, id_value, fld, raw, problem, "warning"))
                values[raw_name] = fld.on_error
        if blank:
            return  # nothing in any mapped column: not data, nothing to report
        if self.constants:
            values.update(self.constants)
        skipped = self._non_data(number, cells)
        if skipped is not None:
            issues.append(skipped)
            return
        for fld in self.required:
            if values[fld.raw] is None and not (
                errors and any(e.field == fld.name for e in errors)
            ):
                errors = errors or []
                errors.append(
                    self._issue(
                        number,
                        id_value,
                        fld,
                        None,
                        v.ValueProblem(
                            f"missing_{fld.name}",
                            f"'{fld.header}' is empty but required for every {self.entity} row; "
                            "fill it in",
                        ),
                        "error",
                    )
                )
        if not errors and id_value is not None:
            first = self.seen_ids.get(id_value)
            if first is not None:
                fld = self.id_field_spec
                errors = [
                    self._issue(
                        number,
                        id_value,
                        fld,
                        cells[fld.index],
                        v.ValueProblem(
                            "duplicate_id",
                            f"'{fld.header}' repeats the id already used on row {first}; "
                            "the first row is kept and this one rejected: give each row its "
                            "own id or remove the repeat",
                        ),
                        "error",
                    )
                ]
            else:
                self.seen_ids[id_value] = number
        if errors:
            issues.extend(errors)
            return
        if warnings:
            issues.extend(warnings)
        if self.consent_policy is not None:
            values["consent_to_share"] = self._consent(values.get("consent_to_share"))
        if self.id_index is None:
            values["source_id"] = self._derived_id(values)
        for name, target in self._targets:
            target.append(values.get(name))
        self._files.append(self.file_name)
        self._numbers.append(number)

    def _blank_cell(self, raw: str) -> bool:
        """Whether a text cell is blank: empty, spaces or invisible characters only, or one
        of the member's null words; raises ValueProblem for a spreadsheet error value."""
        text = v.cell_text(raw)
        if not text or text.casefold() in self.null_values:
            return True
        if text.startswith(("#", "Err:")) and (problem := v.spreadsheet_error(text)):
            raise problem
        return False

    def _suspect(self, number: int, cells: SuspectRow, issues: list[Issue]) -> None:
        """Reject a row the reader distrusts (an unclosed quote swallowed the rows after
        it), keeping the swallowed text as the raw value so nothing is lost."""
        fld = next((f for f in self.fields if f.index == cells.column), None)
        header = (
            self.opened.headers[cells.column] if cells.column < len(self.opened.headers) else None
        )
        id_value = None
        if self.id_index is not None and self.id_index < len(cells):
            id_value = v.cell_text(cells[self.id_index]) or None
        issue = self._issue(
            number,
            id_value,
            fld,
            cells[cells.column],
            v.ValueProblem(cells.code, cells.reason),
            "error",
        )
        if fld is None:
            issue = Issue(**{**issue.__dict__, "column_name": header})
        issues.append(issue)

    def _settle_number(self, fld: _Field, raw: Any, problem: v.ValueProblem) -> Any:
        """An ambiguous number (1,234) read with the separator the column's other values
        show, or the problem to report when they show none or both."""
        convention, why = self.conventions.get(fld.name) or self._read_convention(fld)
        if convention is None:
            if not why:
                return problem
            return v.ValueProblem(problem.code, f"{problem.reason} ({why})")
        return v.parse_number(raw, convention)  # type: ignore[arg-type]

    def _read_convention(self, fld: _Field) -> tuple[str | None, str]:
        """Scan the column once for numbers with only one reading: '1,5' or '1.234,50'
        show a decimal comma, '1.5' or '1,234.50' a decimal point. Done only when an
        ambiguous number needs it, so a file without one is read once."""
        comma = point = 0
        with open_table(self.member, self.entity, self.opened.path) as again:
            for _, cells in again.rows():
                if fld.index >= len(cells):
                    continue
                cell = cells[fld.index]
                if type(cell) is not str or ("," not in cell and "." not in cell):
                    continue
                as_point, as_comma = v.number_readings(v.cell_text(cell))
                if as_point is None and as_comma is not None:
                    comma += 1
                elif as_comma is None and as_point is not None:
                    point += 1
        if comma and not point:
            found: tuple[str | None, str] = (",", "")
        elif point and not comma:
            found = (".", "")
        elif comma and point:
            found = (
                None,
                f"the column '{fld.header}' has {point} number(s) written with a decimal "
                f"point and {comma} with a decimal comma",
            )
        else:
            found = (None, "")
        self.conventions[fld.name] = found
        return found

    def _consent(self, answer: bool | None) -> bool:
        """The consent kept for a person under the member's policy, counted by what it did.

        per_record: a yes is consent, anything else is not. all: only a missing answer is
        filled in as consent; an explicit no (or an unrecognised word) stays no. none: never.
        """
        if self.consent_policy == "all":
            if answer is None:
                self.consent_counts["blank_taken_as_yes"] += 1
                return True
            self.consent_counts["yes" if answer else "no_kept"] += 1
            return bool(answer)
        if self.consent_policy == "none":
            self.consent_counts["yes_not_shared" if answer else "no"] += 1
            return False
        self.consent_counts["yes" if answer else "no"] += 1
        return bool(answer)

    def _derived_id(self, values: dict[str, Any]) -> str:
        """A stable id from the row's natural key, numbered for exact repeats.

        Labels are compared case/space-insensitively so tidying a label in the file does
        not rename the record.
        """
        parts = []
        for name in NATURAL_KEY[self.entity]:
            value = values.get(name)
            parts.append("" if value is None else normalise_label(str(value)))
        key = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:16]
        count = self.occurrences.get(key, 0) + 1
        self.occurrences[key] = count
        return f"{key}-{count}"


def read_entity(
    member: Member,
    entity: str,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    files: list[Path] | None = None,
) -> Iterator[Batch]:
    """Yield the batches of the member's file(s) for ``entity`` (or of ``files``, some of
    them), one file after another; each file is closed after it is read.

    Each file is its own unit (its ids are checked for repeats within it), because each is
    reloaded on its own when it alone changes.
    """
    for path in table_files(member, entity) if files is None else files:
        with open_table(member, entity, path) as opened:
            yield from EntityReader(member, entity, opened, chunk_rows).batches()
