"""Quarantine rows for Salesforce values the load could not read.

A Salesforce value that cannot be read as its field's type (a Birthdate of '31/02/garbage')
is loaded empty, so the member's other records and the rest of that record still load; the
connector names it in the record's ``_hub_unreadable`` column, masked where the field is
personal (``connectors.salesforce_npsp.source.arrow_page``). Here each one becomes a
warning in ``quarantine.rejected_rows`` with the record id, object and field, so the member
hears about it with the rest of the quarantine, and it goes when the record is corrected.

This is Python, not a SQL model, because the column holds JSON, which the warehouses
(DuckDB, PostgreSQL) do not unpack with one SQL text.
"""

from __future__ import annotations

import json
from typing import Any

from connectors.members import Member, SalesforceConnector
from connectors.salesforce_npsp.source import UNREADABLE_COLUMN, is_personal, object_specs
from transforms.quality.rules import REJECTED_COLUMNS
from transforms.warehouse import Session

# The entity a raw table's records belong to. Tables the canonical model does not read keep
# their own name, so a bad value there is still reported.
ENTITY_BY_TABLE = {
    "npsp__contact": "person",
    "pmdm__program": "programme",
    "pmdm__service": "service",
    "pmdm__program_engagement": "engagement",
    "pmdm__service_delivery": "service_delivery",
    "npsp__outcome": "outcome",
    "npsp__account": "account",
    "npsp__opportunity": "opportunity",
    "npsp__recurring_donation": "recurring_donation",
}

TYPE_NAMES = {
    "date": "a date",
    "timestamp": "a date and time",
    "double": "a number",
    "bigint": "a whole number",
    "bool": "true or false",
}


def quarantine_unreadable(session: Session, member: Member) -> int:
    """Add a warning per unreadable value in the member's raw Salesforce tables; return how
    many. Deleted records are left out, as the other quarantine models leave them out."""
    connector = member.connector
    if not isinstance(connector, SalesforceConnector):
        return 0
    added = 0
    for spec in object_specs(connector.settings()):
        table = spec.resource
        if not session.table_exists(member.raw_dataset, table):
            continue
        present = session.columns(member.raw_dataset, table)
        if UNREADABLE_COLUMN not in present:
            continue  # loaded before the column existed; the next load adds it
        live = " AND NOT COALESCE(is_deleted, FALSE)" if "is_deleted" in present else ""
        rows = session.fetchall(
            f"SELECT id, {UNREADABLE_COLUMN}, _dlt_load_id FROM {member.raw_dataset}.{table} "
            f"WHERE {UNREADABLE_COLUMN} IS NOT NULL{live} ORDER BY id"
        )
        entity = ENTITY_BY_TABLE.get(table, table)
        for record_id, note, load_id in rows:
            for field, kind, value in _entries(note):
                session.execute(
                    f"INSERT INTO quarantine.rejected_rows ({REJECTED_COLUMNS}) VALUES "
                    "(?, 'salesforce_npsp', ?, ?, NULL, ?, ?, ?, ?, 'value.unreadable', "
                    "'warning', 'load', ?)",
                    [
                        member.org_id,
                        entity,
                        spec.sobject,
                        record_id,
                        field,
                        value,
                        _reason(spec.sobject, field, kind),
                        load_id,
                    ],
                )
                added += 1
    return added


def _entries(note: Any) -> list[tuple[str, str, str]]:
    """(field, type, shown value) from one record's column; nothing from a malformed one."""
    try:
        parsed = json.loads(note)
    except (TypeError, ValueError):
        return []
    if not isinstance(parsed, dict):
        return []
    out = []
    for field, entry in sorted(parsed.items()):
        if isinstance(entry, list) and len(entry) == 2:
            out.append((str(field), str(entry[0]), str(entry[1])))
    return out


def _reason(sobject: str, field: str, kind: str) -> str:
    what = TYPE_NAMES.get(kind, kind)
    masking = (
        " (the value is masked: digits show as 9, letters as x)"
        if is_personal(sobject, field)
        else ""
    )
    return (
        f"{sobject}.{field} could not be read as {what}, so it was loaded empty and the "
        f"record kept; correct the value in Salesforce{masking}"
    )
