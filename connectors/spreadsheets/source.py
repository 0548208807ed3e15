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

from connectors.members import Member
from connectors.raw_pipeline import member_pipeline
from connectors.spreadsheets.fingerprints import (
    SOURCE_NAME,
    STATE_KEY,
    current_fingerprints,
    programme_fingerprint,
    resource_name,
    stored_fingerprints,
    table_fingerprint,
)
from connectors.spreadsheets.records import (
    DEFAULT_CHUNK_ROWS,
    QUARANTINE_COLUMNS,
    RAW_COLUMNS,
    Issue,
    read_entity,
)

_ARROW_TYPES = {
    "text": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "bool": pa.bool_(),
    "bigint": pa.int64(),
    "double": pa.float64(),
}


def _arrow_schema(columns: dict[str, str]) -> pa.Schema:
    return pa.schema([pa.field(name, _ARROW_TYPES[kind]) for name, kind in columns.items()])


def _dlt_columns(columns: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Explicit types, so an empty column keeps its type and ids are never numbers."""
    hints: dict[str, dict[str, Any]] = {}
    for name, kind in columns.items():
        hint: dict[str, Any] = {"name": name, "data_type": kind, "nullable": True}
        if kind == "timestamp":
            hint["timezone"] = False  # spreadsheet times are local wall-clock times
        hints[name] = hint
    return hints


class _Table:
    """One destination table: its Arrow schema and the dlt hints attached to every item."""

    def __init__(self, name: str, columns: dict[str, str]) -> None:
        self.name = name
        self.columns = list(columns)
        self.schema = _arrow_schema(columns)
        self.hints = dlt.mark.make_hints(table_name=name, columns=_dlt_columns(columns))

    def item(self, data: dict[str, list[Any]]) -> Any:
        arrays = [pa.array(data[c], type=self.schema.field(c).type) for c in self.columns]
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        return dlt.mark.with_hints(table, self.hints, create_table_variant=True)

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
    fingerprint = table_fingerprint(member, entity)
    name = resource_name(entity)
    good = _Table(name, RAW_COLUMNS[entity])
    quarantine = _Table(f"{name}_quarantine", QUARANTINE_COLUMNS)
    pending: list[Issue] = []
    sent_good = sent_quarantine = False
    for batch in read_entity(member, entity, chunk_rows):
        if batch.row_count:
            yield good.item(batch.columns)
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
    for entity in member.connector.tables:
        resources.append(
            dlt.resource(
                _entity_resource_rows,
                name=resource_name(entity),
                write_disposition="replace",
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
