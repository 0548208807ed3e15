"""``hub check <org>``: what would happen if this member's files were loaded now.

A member (or the person helping them) runs the check before the first load and after each
change to their export. It reads every configured file exactly as the load would and says
which columns were found, how many rows would load, be rejected or lose a value, why, and
which programme/status/outcome labels still need a line in the YAML mappings. It never
raises for a data problem.

So the member can fix the file before loading, the first rejected rows are listed with row,
column, value and reason. Those values are the member's own file shown back to whoever runs
the check on the member's files: they live only in the report object (kept out of its repr)
and in ``render()``'s text, which ``hub check`` prints to the terminal. Nothing here logs or
stores them; ``render(show_values=False)`` leaves them out where the text goes further.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.errors import SpreadsheetError
from connectors.members import Member, is_glob, normalise_label
from connectors.spreadsheets.reading import (
    MissingColumnsError,
    OpenedTable,
    open_table,
    table_files,
    table_path,
)
from connectors.spreadsheets.records import EntityReader, Issue
from connectors.values import consent_line

# Label columns whose values must appear in a mapping: (entity, raw column) -> mapping key.
LABEL_MAPPINGS: dict[tuple[str, str], str] = {
    ("engagement", "programme"): "programmes",
    ("engagement", "status"): "engagement_status",
    ("service_delivery", "programme"): "programmes",
    ("outcome", "programme"): "programmes",
    ("outcome", "outcome"): "outcomes",
    ("outcome", "status"): "outcome_status",
}
TOP_REASONS = 5
ROWS_SHOWN = 10  # rejected rows listed per table
WARNINGS_SHOWN = 5  # rows that lose a value, listed per table
VALUE_CHARS = 60  # a value is shown on one line, cut to this length


@dataclass
class ColumnCheck:
    """One mapped column: found in the header row, or missing with the closest header."""

    field: str
    header: str
    found: bool
    suggestion: str | None = None


@dataclass
class ReasonCount:
    """How many rows share one problem (grouped by severity, column and kind of problem)."""

    severity: str
    column: str | None
    code: str
    reason: str  # an example reason; never contains a cell's value
    rows: int


@dataclass
class RowProblem:
    """One problem on one row, to show the member where to fix the file."""

    row: int
    column: str | None
    value: str | None  # the cell as the member's file has it (personal data: see module)
    reason: str
    severity: str


def _one_line(value: str) -> str:
    """A cell's text on one line: line breaks shown as ⏎, control characters as spaces."""
    text = value.replace("\r\n", "⏎").replace("\n", "⏎").replace("\r", "⏎")
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


@dataclass
class UnmappedLabel:
    """A label used in the file with no entry under ``mappings.<mapping>`` in the YAML."""

    mapping: str
    column: str
    label: str
    rows: int


@dataclass
class TableCheck:
    """Everything the check found out about one configured table."""

    entity: str
    file: str
    readable: bool = False
    problem: str | None = None
    fix: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    header_row: int | None = None
    columns: list[ColumnCheck] = field(default_factory=list)
    rows_loaded: int = 0
    rows_rejected: int = 0
    rows_with_warnings: int = 0
    rows_skipped: int = 0
    reasons: list[ReasonCount] = field(default_factory=list)
    unmapped: list[UnmappedLabel] = field(default_factory=list)
    orphan_rows: int = 0
    orphan_examples: list[str] = field(default_factory=list)
    repeated_rows: int = 0  # rows whose id an earlier file of the same table already has
    repeated_examples: list[str] = field(default_factory=list, repr=False)
    consent_policy: str | None = None
    consent: dict[str, int] = field(default_factory=dict)  # see EntityReader._consent
    rejected_examples: list[RowProblem] = field(default_factory=list, repr=False)
    warning_examples: list[RowProblem] = field(default_factory=list, repr=False)


@dataclass
class CheckReport:
    """The check of one member; ``ok`` is False when any file cannot be read at all."""

    org_id: str
    config_file: str
    tables: list[TableCheck]

    @property
    def ok(self) -> bool:
        """True when every table can be read (rejected rows and unmapped labels are reported
        but do not stop a load)."""
        return all(t.readable for t in self.tables)

    def render(self, show_values: bool = True) -> str:
        """Plain text for the terminal (no markup). With ``show_values`` the first rejected
        rows show their cell values from the member's file: print it, never log it."""
        lines = [f"Member {self.org_id} ({self.config_file})"]
        for t in self.tables:
            lines.append("")
            mark = "✓" if t.readable else "✗"
            lines.append(f"{mark} {t.entity}: {t.file}")
            if t.encoding or t.delimiter:
                delim = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}.get(
                    t.delimiter or "", t.delimiter
                )
                lines.append(f"    encoding {t.encoding}, delimiter {delim}")
            if t.sheet:
                lines.append(f"    sheet '{t.sheet}'")
            if t.header_row:
                lines.append(f"    header on row {t.header_row}")
            for c in t.columns:
                if c.found:
                    lines.append(f"    ✓ {c.field} <- '{c.header}'")
                else:
                    hint = f" (closest header: '{c.suggestion}')" if c.suggestion else ""
                    lines.append(f"    ✗ {c.field}: no column '{c.header}'{hint}")
            if t.problem:
                lines.append(f"    problem: {t.problem}")
                lines.append(f"    fix: {t.fix}")
                continue
            lines.append(
                f"    rows: {t.rows_loaded} would load, {t.rows_rejected} rejected, "
                f"{t.rows_with_warnings} with a value dropped, {t.rows_skipped} skipped"
            )
            for r in t.reasons:
                where = f" '{r.column}'" if r.column else ""
                lines.append(f"    {r.rows} × {r.severity}{where}: {r.reason}")
            lines.extend(_examples(t, show_values))
            if t.orphan_rows:
                examples = ", ".join(f"'{i}'" for i in t.orphan_examples)
                rows = "1 row names" if t.orphan_rows == 1 else f"{t.orphan_rows} rows name"
                lines.append(
                    f"    {rows} a person not in the people file (e.g. "
                    f"{examples}): they will be quarantined; fix the ids or the people rows"
                )
            if t.repeated_rows:
                shown = "; ".join(t.repeated_examples) if show_values else ""
                lines.append(
                    f"    {t.repeated_rows} row(s) repeat an id an earlier file of this table "
                    f"already has{f' ({shown})' if shown else ''}: each file loads on its "
                    "own, so both would load; remove the repeat from one of the files"
                )
            if t.consent_policy is not None and t.consent:
                lines.append(f"    {consent_line(t.consent_policy, t.consent)}")
            for u in t.unmapped:
                lines.append(
                    f"    unmapped {u.column} '{u.label}' ({u.rows} rows): add it under "
                    f"mappings.{u.mapping} in {self.config_file}"
                )
        lines.append("")
        lines.append("All files readable." if self.ok else "Some files cannot be read: see above.")
        return "\n".join(lines)


def _examples(t: TableCheck, show_values: bool) -> list[str]:
    """The rows to fix, each with its row number, column, value and reason."""
    lines: list[str] = []
    for title, shown, total in (
        ("rejected", t.rejected_examples, t.rows_rejected),
        ("losing a value", t.warning_examples, t.rows_with_warnings),
    ):
        if not shown:
            continue
        first = f"first {len(shown)} of {total}" if total > len(shown) else f"all {total}"
        lines.append(f"    rows {title} ({first}; fix them in the file):")
        for p in shown:
            where = f"row {p.row}" + (f", column '{p.column}'" if p.column else "")
            value = ""
            if show_values and p.value is not None:
                value = f" = '{_one_line(p.value)}'"
            lines.append(f"      {where}{value}: {p.reason}")
    return lines


def _check_tables(member: Member, entity: str, people: set[str] | None) -> list[TableCheck]:
    """One check per file of the table (a pattern may name several)."""
    table = member.connector.tables[entity]
    if not is_glob(table.file):
        return [_check_table(member, entity, people, None)]
    try:
        files = table_files(member, entity)
    except SpreadsheetError as err:
        return [TableCheck(entity=entity, file=str(table.file), problem=err.problem, fix=err.fix)]
    earlier: dict[str, str] = {}  # id -> the file that first had it
    return [_check_table(member, entity, people, path, earlier) for path in files]


def _check_table(
    member: Member,
    entity: str,
    people: set[str] | None,
    path: Path | None,
    earlier: dict[str, str] | None = None,
) -> TableCheck:
    table = member.connector.tables[entity]
    report = TableCheck(entity=entity, file=str(path or table.file))
    try:
        opened = open_table(member, entity, path)
    except MissingColumnsError as err:
        report.header_row = err.header_row
        report.columns = [
            ColumnCheck(f, h, f not in err.missing, err.missing.get(f))
            for f, h in table.columns.items()
        ]
        report.problem, report.fix = err.problem, err.fix
        return report
    except SpreadsheetError as err:
        report.problem, report.fix = err.problem, err.fix
        return report
    with opened:
        report.readable = True
        report.encoding, report.delimiter = opened.encoding, opened.delimiter
        report.sheet, report.header_row = opened.sheet, opened.header_row
        report.columns = [ColumnCheck(f, opened.header_of(f), True) for f in table.columns]
        _count(member, entity, opened, report, people, earlier)
    return report


def _count(
    member: Member,
    entity: str,
    opened: OpenedTable,
    report: TableCheck,
    people: set[str] | None,
    earlier: dict[str, str] | None = None,
) -> None:
    """Count what would load and why rows would not; ``people`` collects (person table) or
    checks against (other tables) the person ids that would load; ``earlier`` (a table of
    several files) collects the ids of the files before this one, to find repeats that
    each file's own reading cannot see."""
    reader = EntityReader(member, entity, opened)
    mapping_keys = {column: key for (ent, column), key in LABEL_MAPPINGS.items() if ent == entity}
    known = {
        key: {normalise_label(label) for label in getattr(member.mappings, key)}
        for key in set(mapping_keys.values())
    }
    label_rows: dict[tuple[str, str], Counter[str]] = {}
    first_spelling: dict[tuple[str, str], str] = {}
    rejected: set[int] = set()
    warned: set[int] = set()
    reasons: Counter[tuple[str, str | None, str]] = Counter()
    examples: dict[tuple[str, str | None, str], str] = {}
    try:
        for batch in reader.batches():
            report.rows_loaded += batch.row_count
            if earlier is not None:
                _repeats(report, batch.columns, earlier, opened.path.name)
            if people is not None and entity == "person":
                people.update(i for i in batch.columns["source_id"] if i is not None)
            elif people is not None and "person_source_id" in batch.columns:
                for person in batch.columns["person_source_id"]:
                    if person is not None and person not in people:
                        report.orphan_rows += 1
                        if len(report.orphan_examples) < 3:
                            report.orphan_examples.append(person)
            for issue in batch.issues:
                if issue.severity == "error":
                    rejected.add(issue.source_row)
                    _keep(report.rejected_examples, issue, ROWS_SHOWN)
                elif issue.severity == "warning":
                    warned.add(issue.source_row)
                    _keep(report.warning_examples, issue, WARNINGS_SHOWN)
                else:
                    report.rows_skipped += 1
                key = (issue.severity, issue.column_name, issue.code)
                reasons[key] += 1
                examples.setdefault(key, issue.reason)
            for column, mapping in mapping_keys.items():
                counter = label_rows.setdefault((mapping, column), Counter())
                for label in batch.columns[column]:
                    if label is None:
                        continue
                    norm = normalise_label(label)
                    if norm not in known[mapping]:
                        counter[norm] += 1
                        first_spelling.setdefault((column, norm), label)
        if entity == "person":
            report.consent_policy = member.sharing.consent
            report.consent = dict(reader.consent_counts)
    except SpreadsheetError as err:  # e.g. an encoding error half-way through the file
        report.readable = False
        report.problem, report.fix = err.problem, err.fix
    report.rows_rejected = len(rejected)
    report.rows_with_warnings = len(warned)
    report.reasons = [
        ReasonCount(sev, col, code, examples[(sev, col, code)], n)
        for (sev, col, code), n in reasons.most_common(TOP_REASONS)
    ]
    headers = {f: opened.header_of(f) for f in member.connector.tables[entity].columns}
    for (mapping, column), counter in label_rows.items():
        for norm, rows in counter.most_common():
            report.unmapped.append(
                UnmappedLabel(
                    mapping=mapping,
                    column=headers.get(column, column),
                    label=first_spelling[(column, norm)],
                    rows=rows,
                )
            )


def _repeats(
    report: TableCheck, columns: dict[str, list[Any]], earlier: dict[str, str], file: str
) -> None:
    for source_id, row in zip(columns["source_id"], columns["_source_row"], strict=True):
        first = earlier.setdefault(source_id, file)
        if first != file:
            report.repeated_rows += 1
            if len(report.repeated_examples) < 3:
                report.repeated_examples.append(f"row {row} repeats '{source_id}' of {first}")


def _keep(examples: list[RowProblem], issue: Issue, limit: int) -> None:
    """Keep the issue as an example while fewer than ``limit`` rows are kept (a row with
    several problems shows each)."""
    if len(examples) >= 3 * limit:
        return
    # Issues come in row order, so a row's problems arrive together.
    if (
        len(examples) >= limit
        and examples[-1].row != issue.source_row
        and len({e.row for e in examples}) >= limit
    ):
        return
    examples.append(
        RowProblem(
            issue.source_row, issue.column_name, issue.raw_value, issue.reason, issue.severity
        )
    )


def check_member(member: Member) -> CheckReport:
    """Check every configured table of a spreadsheet member; never raises for data problems."""
    # The person table goes first so the others can be checked against the ids it loads.
    entities = sorted(member.connector.tables, key=lambda e: e != "person")
    people: set[str] | None = set() if "person" in member.connector.tables else None
    tables = [t for entity in entities for t in _check_tables(member, entity, people)]
    if any(t.entity == "person" and not t.readable for t in tables):
        for t in tables:  # without the people file every row would look orphaned
            t.orphan_rows, t.orphan_examples = 0, []
    for t in tables:
        if not t.readable and t.problem and t.problem.endswith("file not found"):
            t.file = str(table_path(member, t.entity))
    _where_the_member_keeps_them(member, tables)
    return CheckReport(org_id=member.org_id, config_file=member.config_path.name, tables=tables)


def _where_the_member_keeps_them(member: Member, tables: list[TableCheck]) -> None:
    """Name a remote location's files by their URL, not the hub's cache copy they were
    read from: the member knows the bucket, not the hub's folders."""
    location = member.location
    if location is None or not location.remote:
        return
    for t in tables:
        path = Path(t.file)
        if not path.is_absolute():
            t.file = location.url(path.as_posix())
        elif path.is_relative_to(member.files_dir):
            t.file = location.url(path.relative_to(member.files_dir).as_posix())
