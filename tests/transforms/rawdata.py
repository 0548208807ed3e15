"""Write raw tables shaped like the spreadsheet connector's output, for transform tests.

Transform tests start from raw rows written straight into the warehouse (DuckDB or
PostgreSQL) so each SQL model is exercised on its own; the connector's own tests cover how
those rows are read from files.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import yaml

from connectors.members import Member, load_member
from transforms.warehouse import Warehouse

RAW_COLUMNS: dict[str, dict[str, str]] = {
    "person": {
        "source_id": "TEXT",
        "given_name": "TEXT",
        "family_name": "TEXT",
        "birth_date": "DATE",
        "email": "TEXT",
        "phone": "TEXT",
        "postcode": "TEXT",
        "consent_to_share": "BOOLEAN",
        "source_updated_at": "TIMESTAMP",
    },
    "engagement": {
        "source_id": "TEXT",
        "person_source_id": "TEXT",
        "programme": "TEXT",
        "status": "TEXT",
        "start_date": "DATE",
        "end_date": "DATE",
        "source_updated_at": "TIMESTAMP",
    },
    "service_delivery": {
        "source_id": "TEXT",
        "person_source_id": "TEXT",
        "programme": "TEXT",
        "service_name": "TEXT",
        "delivered_on": "DATE",
        "quantity": "DOUBLE PRECISION",
        "unit": "TEXT",
        "source_updated_at": "TIMESTAMP",
    },
    "outcome": {
        "source_id": "TEXT",
        "person_source_id": "TEXT",
        "programme": "TEXT",
        "outcome": "TEXT",
        "status": "TEXT",
        "measured_on": "DATE",
        "value": "DOUBLE PRECISION",
        "source_updated_at": "TIMESTAMP",
    },
    "programme": {"source_id": "TEXT", "name": "TEXT", "outcome_area": "TEXT"},
}
QUARANTINE_COLUMNS = {
    "entity": "TEXT",
    "source_file": "TEXT",
    "source_row": "BIGINT",
    "source_id": "TEXT",
    "column_name": "TEXT",
    "raw_value": "TEXT",
    "reason": "TEXT",
    "rule": "TEXT",
    "severity": "TEXT",
}


def write_member_yaml(folder: Path, org_id: str, config: dict[str, Any]) -> Member:
    """Write members/<org_id>.yaml and load it through the real validator."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{org_id}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return load_member(path)


def write_raw(
    warehouse: Warehouse,
    org_id: str,
    entity: str,
    rows: list[dict[str, Any]],
    table: str | None = None,
    columns: dict[str, str] | None = None,
) -> None:
    """Create raw_<org>.spreadsheet__<entity> (with dlt's bookkeeping columns) and fill it."""
    columns = columns or RAW_COLUMNS[entity]
    table = table or f"spreadsheet__{entity}"
    extra = {"_source_file": "TEXT", "_source_row": "BIGINT"} if entity != "programme" else {}
    cols = {**columns, **extra, "_dlt_load_id": "TEXT", "_dlt_id": "TEXT"}
    with warehouse.connect() as con:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS raw_{org_id}")
        con.execute(f"DROP TABLE IF EXISTS raw_{org_id}.{table}")
        con.execute(
            f"CREATE TABLE raw_{org_id}.{table} ("
            + ", ".join(f"{c} {t}" for c, t in cols.items())
            + ")"
        )
        for i, row in enumerate(rows, start=1):
            full = {c: row.get(c) for c in columns}
            if extra:
                full["_source_file"] = row.get("_source_file", f"{entity}.csv")
                full["_source_row"] = row.get("_source_row", i + 1)
            full["_dlt_load_id"] = "1700000000.0"
            full["_dlt_id"] = f"{entity}-{i}"
            con.execute(
                f"INSERT INTO raw_{org_id}.{table} VALUES ({', '.join('?' for _ in full)})",
                list(full.values()),
            )


def d(text: str) -> date:
    """ISO date literal, for readable fixtures."""
    return date.fromisoformat(text)


# Columns compared when a member is built on both warehouses.
CANONICAL_COMPARED: dict[str, str] = {
    "canonical.person": "source_id, is_deleted, given_name, phone, postcode, consent_to_share",
    "canonical.programme": "source_id, name, outcome_area",
    "canonical.engagement": "source_id, person_source_id, status, start_date, end_date",
    "canonical.service_delivery": "source_id, programme_source_id, delivered_on, quantity",
    "canonical.outcome": "source_id, outcome_code, status, measured_on, value",
    "quarantine.rejected_rows": "entity, source_id, column_name, raw_value, reason, severity",
}


def copy_raw_dataset(duckdb_path: Path, dataset: str, target: Warehouse) -> None:
    """Copy one member's raw dataset (dlt's tables left out) from a DuckDB file to ``target``,
    so a CRM load over HTTP can be built on PostgreSQL too."""
    import duckdb

    con = duckdb.connect(str(duckdb_path), read_only=True)
    try:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = ? AND table_name NOT LIKE '_dlt%'",
                [dataset],
            ).fetchall()
        ]
        with target.connect() as session:
            session.execute(f"CREATE SCHEMA IF NOT EXISTS {dataset}")
            for table in tables:
                data = con.sql(f"SELECT * FROM {dataset}.{table}").to_arrow_table()
                session.replace_table(dataset, table, data)
    finally:
        con.close()


def canonical_rows(warehouse: Warehouse) -> dict[str, list[tuple]]:
    """Every canonical and quarantine row (compared columns), ordered, table by table."""
    out = {}
    with warehouse.connect() as session:
        for table, columns in CANONICAL_COMPARED.items():
            out[table] = session.fetchall(f"SELECT {columns} FROM {table} ORDER BY {columns}")
    return out
