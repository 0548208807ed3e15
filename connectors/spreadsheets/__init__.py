"""Spreadsheet connector: members' CSV and Excel files -> typed raw tables via dlt.

Public API:
- ``spreadsheet_source(member)``: the dlt source (no file I/O until a resource runs).
- ``raw_pipeline(member, destination, pipelines_dir)``: the member's own dlt pipeline.
- ``changed_tables(member, pipeline)``: resources whose file or config changed since the last
  load; run ``spreadsheet_source(member).with_resources(*changed)``.
- ``check_member(member)``: the ``hub check`` report (counts, headers, labels, and the first
  rejected rows with their values, for the member's own terminal only).
- A table's ``file`` may be a pattern (``sessions-*.csv``): each file is read, fingerprinted
  and reloaded on its own (``reading.table_files``).
"""

from __future__ import annotations

from connectors.spreadsheets.check import CheckReport, TableCheck, check_member
from connectors.spreadsheets.reading import MissingColumnsError, OpenedTable, open_table
from connectors.spreadsheets.records import (
    QUARANTINE_COLUMNS,
    RAW_COLUMNS,
    Batch,
    Issue,
    read_entity,
)
from connectors.spreadsheets.source import changed_tables, raw_pipeline, spreadsheet_source

__all__ = [
    "QUARANTINE_COLUMNS",
    "RAW_COLUMNS",
    "Batch",
    "CheckReport",
    "Issue",
    "MissingColumnsError",
    "OpenedTable",
    "TableCheck",
    "changed_tables",
    "check_member",
    "open_table",
    "raw_pipeline",
    "read_entity",
    "spreadsheet_source",
]
