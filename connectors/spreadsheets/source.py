"""The dlt source for members who send spreadsheets, and the helpers around it.

``spreadsheet_source(member)`` does no file I/O when it is built (Dagster builds it while
loading definitions); files are read only when a resource runs. Each entity resource yields
Arrow tables of typed rows (dlt loads them without row-by-row normalising) and its quarantine
rows into ``<table>_quarantine`` from the same resource, so a ``replace`` swaps both at once.
Unchanged files are skipped by the caller: ``changed_tables`` compares fingerprints against
the pipeline's state, because a ``replace`` resource that runs and yields nothing would
truncate its tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
from dlt.common.destination import AnyDestination

from connectors.members import Member, is_glob
from connectors.raw_pipeline import member_pipeline
from connectors.spreadsheets.arrow_rows import ARROW_TYPES, to_arrow
from connectors.spreadsheets.fingerprints import (
    FILES_KEY,
    SOURCE_NAME,
    STATE_KEY,
    current_fingerprints,
    file_fingerprints,
    files_fingerprint,
    programme_fingerprint,
    resource_name,
    stored_fingerprints,
    table_fingerprint,
)
from connectors.spreadsheets.reading import table_files
from connectors.spreadsheets.records import (
    DEFAULT_CHUNK_ROWS,
    QUARANTINE_COLUMNS,
    RAW_COLUMNS,
    Batch,
    Issue,
    read_entity,
)


def _column(values: list[Any] | pa.Array | pa.ChunkedArray, kind: pa.DataType) -> Any:
    """An Arrow column of ``kind`` from a list, or an Arrow column already of that type."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values if values.type == kind else values.cast(kind)
    return to_arrow(values, kind)


def _arrow_schema(columns: dict[str, str]) -> pa.Schema:
    return pa.schema([pa.field(name, ARROW_TYPES[kind]) for name, kind in columns.items()])


# Marks, in a table of several files, the row that clears one file's earlier rows.
REPLACED = "_hub_replaced"


def _dlt_columns(columns: dict[str, str], merge: bool = False) -> dict[str, dict[str, Any]]:
    """Explicit types, so an empty column keeps its type and ids are never numbers."""
    hints: dict[str, dict[str, Any]] = {}
    for name, kind in columns.items():
        hint: dict[str, Any] = {"name": name, "data_type": kind, "nullable": True}
        if kind == "timestamp":
            hint["timezone"] = False  # spreadsheet times are local wall-clock times
        if merge and name == REPLACED:
            hint["hard_delete"] = True
        hints[name] = hint
    return hints


class _Table:
    """One destination table: its Arrow schema and the dlt hints attached to every item.

    A table of several files is written per file: ``merge`` on ``merge_key`` (the file's
    name) deletes that file's earlier rows and inserts its new ones, leaving the others.
    """

    def __init__(
        self,
        name: str,
        columns: dict[str, str],
        disposition: str | None = None,
        merge_key: str | None = None,
    ) -> None:
        self.name = name
        self.columns = list(columns)
        self.schema = _arrow_schema(columns)
        merge = disposition == "merge"
        extra: dict[str, Any] = {"write_disposition": disposition} if disposition else {}
        if merge:
            extra["merge_key"] = merge_key
        self.hints = dlt.mark.make_hints(
            table_name=name, columns=_dlt_columns(columns, merge), **extra
        )

    def item(self, data: dict[str, list[Any] | pa.Array]) -> Any:
        arrays = [_column(data[c], self.schema.field(c).type) for c in self.columns]
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        return dlt.mark.with_hints(table, self.hints, create_table_variant=True)

    def batch_item(self, batch: Batch, **extra: list[Any]) -> Any:
        """The item of a batch's good rows (its Arrow table as it is, when it has one)."""
        if batch.table is None:
            return self.item({**batch.lists, **extra})
        columns: dict[str, Any] = {n: batch.table.column(n) for n in batch.table.column_names}
        return self.item({**columns, **extra})

    def empty(self) -> Any:
        return self.item({c: [] for c in self.columns})


def _quarantine_item(table: _Table, issues: list[Issue]) -> Any:
    rows = [i.as_row() for i in issues]
    return table.item({c: [r[c] for r in rows] for c in table.columns})


def _entity_resource_rows(member: Member, entity: str, chunk_rows: int) -> Iterator[Any]:
    """Read one entity's file; yield Arrow chunks of good rows and of quarantine rows.

    Both tables always get at least an empty item, so a file that no longer has bad rows
    empties the quarantine table instead of leaving last load's rows behind.
    """
    if is_glob(member.connector.tables[entity].file):
        yield from _several_files_rows(member, entity, chunk_rows)
        return
    fingerprint = table_fingerprint(member, entity)
    name = resource_name(entity)
    good = _Table(name, RAW_COLUMNS[entity])
    quarantine = _Table(f"{name}_quarantine", QUARANTINE_COLUMNS)
    pending: list[Issue] = []
    sent_good = sent_quarantine = False
    for batch in read_entity(member, entity, chunk_rows):
        if batch.row_count:
            yield good.batch_item(batch)
            sent_good = True
        pending.extend(batch.issues)
        if len(pending) >= chunk_rows:
            yield _quarantine_item(quarantine, pending)
            pending, sent_quarantine = [], True
    if pending or not sent_quarantine:
        yield _quarantine_item(quarantine, pending)
    if not sent_good:
        yield good.empty()
    dlt.current.resource_state()[STATE_KEY] = fingerprint


def _several_files_rows(member: Member, entity: str, chunk_rows: int) -> Iterator[Any]:
    """A table of several files (sessions-*.csv): only the files that changed are read.

    Each changed or removed file first gets one marker row per table, which deletes that
    file's earlier rows (dlt merge with a hard-delete column), then its new rows are
    inserted; the other files' rows stay as loaded. The first load of the table (no files
    recorded yet, e.g. after it named one file) replaces the tables with every file.
    """
    files = table_files(member, entity)
    prints = file_fingerprints(member, entity, files)
    state = dlt.current.resource_state()
    before: dict[str, str] | None = state.get(FILES_KEY)
    disposition = "replace" if before is None else "merge"
    name = resource_name(entity)
    good = _Table(
        name, {**RAW_COLUMNS[entity], REPLACED: "bool"}, disposition, merge_key="_source_file"
    )
    quarantine = _Table(
        f"{name}_quarantine",
        {**QUARANTINE_COLUMNS, REPLACED: "bool"},
        disposition,
        merge_key="source_file",
    )
    if before is None:
        changed = files
    else:
        changed = [p for p in files if before.get(p.name) != prints[p.name]]
        cleared = [p.name for p in changed] + [f for f in before if f not in prints]
        if cleared:
            blank = [None] * len(cleared)
            marks = [True] * len(cleared)
            yield good.item(
                {
                    **{c: blank for c in good.columns},
                    "_source_file": cleared,
                    REPLACED: marks,
                }
            )
            yield quarantine.item(
                {**{c: blank for c in quarantine.columns}, "source_file": cleared, REPLACED: marks}
            )
    sent_good = sent_quarantine = before is not None
    for batch in read_entity(member, entity, chunk_rows, files=changed):
        if batch.row_count:
            yield good.batch_item(batch, **{REPLACED: [False] * batch.row_count})
            sent_good = True
        if batch.issues:
            rows = [i.as_row() for i in batch.issues]
            columns = {c: [r[c] for r in rows] for c in QUARANTINE_COLUMNS}
            yield quarantine.item({**columns, REPLACED: [False] * len(rows)})
            sent_quarantine = True
    if not sent_quarantine:
        yield quarantine.empty()
    if not sent_good:
        yield good.empty()
    state = dlt.current.resource_state()  # the one saved with this load
    state[FILES_KEY] = prints
    state[STATE_KEY] = files_fingerprint(member, entity, prints)


def _programme_rows(member: Member) -> Iterator[Any]:
    """Programmes come from the YAML: source_id is the name exactly as the config writes it."""
    table = _Table(resource_name("programme"), RAW_COLUMNS["programme"])
    names = list(member.mappings.programmes)
    yield table.item(
        {
            "source_id": names,
            "name": names,
            "outcome_area": [member.mappings.programmes[n] for n in names],
        }
    )
    dlt.current.resource_state()[STATE_KEY] = programme_fingerprint(member)


@dlt.source(name=SOURCE_NAME)
def spreadsheet_source(member: Member, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Any:
    """One ``replace`` resource per configured entity, plus the programme list.

    Building the source reads nothing: files are opened when a resource is iterated.
    """
    resources = []
    for entity, table in member.connector.tables.items():
        resources.append(
            dlt.resource(
                _entity_resource_rows,
                name=resource_name(entity),
                # dlt clears a replace resource's state before it runs; a table of several
                # files keeps its files' fingerprints there, and sets each table's
                # disposition on its items (see _several_files_rows).
                write_disposition="merge" if is_glob(table.file) else "replace",
            )(member, entity, chunk_rows)
        )
    resources.append(
        dlt.resource(_programme_rows, name=resource_name("programme"), write_disposition="replace")(
            member
        )
    )
    return resources


def raw_pipeline(
    member: Member, destination: AnyDestination | str, pipelines_dir: Path | str
) -> dlt.Pipeline:
    """The member's spreadsheet pipeline (``hub_<org>_spreadsheet`` into ``raw_<org>``)."""
    return member_pipeline(member.org_id, SOURCE_NAME, destination, pipelines_dir)


def changed_tables(member: Member, pipeline: dlt.Pipeline, full: bool = False) -> list[str]:
    """Resource names whose file or config changed since the last successful load (every
    one with ``full``: ``hub run --full`` reloads files even if unchanged).

    State is first restored from the destination, so a new machine or a wiped pipelines
    folder still skips unchanged files, and a wiped warehouse reloads everything. Raises
    SpreadsheetError when a configured file cannot be read.
    """
    current = current_fingerprints(member)
    pipeline.sync_destination()
    if full:
        return list(current)
    stored = stored_fingerprints(pipeline.state)
    return [name for name, print_ in current.items() if stored.get(name) != print_]
