"""Compute the published tables from the canonical model and hub links.

Counting is SQL (``sql/published/*.sql``); disclosure control is applied afterwards in
Python (``transforms.disclosure``) because secondary suppression is iterative. Only the
disclosure-controlled tables are written to the ``published`` schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from connectors.taxonomy import Taxonomy, load_taxonomy
from transforms import sql
from transforms.canonical import ensure_schema
from transforms.periods import quarters_between
from transforms.warehouse import Session, Warehouse

PUBLISHED_TABLES = ("outcomes_summary", "cross_org_reach", "organisation_summary")

_DATE_BOUNDS = """
SELECT MIN(d), MAX(d) FROM (
    SELECT start_date AS d FROM canonical.engagement WHERE NOT is_deleted
    UNION ALL SELECT end_date FROM canonical.engagement WHERE NOT is_deleted
    UNION ALL SELECT delivered_on FROM canonical.service_delivery WHERE NOT is_deleted
    UNION ALL SELECT measured_on FROM canonical.outcome WHERE NOT is_deleted
) AS dates
"""


@dataclass(frozen=True)
class Counts:
    """Published tables before disclosure control (never written out as they are)."""

    outcomes_summary: pa.Table
    cross_org_reach: pa.Table
    organisation_summary: pa.Table
    periods: list[str]


def _write_reference(session: Session, taxonomy: Taxonomy) -> list[str]:
    session.execute("DELETE FROM hub.outcome_taxonomy")
    for code, area in taxonomy.outcomes.items():
        session.execute(
            "INSERT INTO hub.outcome_taxonomy VALUES (?, ?, ?)",
            [code, area, taxonomy.outcome_labels[code]],
        )
    first, last = session.fetchall(_DATE_BOUNDS)[0]
    session.execute("DELETE FROM hub.period")
    quarters = quarters_between(first, last) if first and last else []
    for row in quarters:
        session.execute("INSERT INTO hub.period VALUES (?, ?, ?)", list(row))
    return [q[0] for q in quarters]


def compute_counts(
    warehouse: Warehouse, taxonomy: Taxonomy | None = None, *, threshold: int = 5
) -> Counts:
    """Count people, engagements and deliveries per quarter and area (undisclosed).

    ``threshold`` (the disclosure threshold) decides which postcode districts a quarter
    names: one with fewer people is counted in 'other'.
    """
    taxonomy = taxonomy or load_taxonomy()
    with warehouse.connect() as session:
        ensure_schema(session, warehouse.dialect)
        periods = _write_reference(session, taxonomy)
        session.execute("DROP TABLE IF EXISTS hub.activity")
        activity = sql.render("published/activity", dialect=warehouse.dialect)
        session.execute(f"CREATE TABLE hub.activity AS {activity}")
        session.execute("DROP TABLE IF EXISTS hub.published_activity")
        published_activity = sql.render(
            "published/published_activity",
            dialect=warehouse.dialect,
            params={"threshold": str(int(threshold))},
        )
        session.execute(f"CREATE TABLE hub.published_activity AS {published_activity}")
        tables = {
            name: session.arrow(sql.render(f"published/{name}", dialect=warehouse.dialect))
            for name in PUBLISHED_TABLES
        }
    return Counts(**tables, periods=periods)


def counted_tables(counts: Counts) -> dict[str, pa.Table]:
    """The uncontrolled published tables by name."""
    return {name: getattr(counts, name) for name in PUBLISHED_TABLES}


def write_published(
    warehouse: Warehouse, tables: dict[str, pa.Table], loss: dict[str, Any] | None = None
) -> dict[str, int]:
    """Replace the ``published`` schema's tables with disclosure-controlled ones, and
    ``hub.disclosure_report`` with what control withheld (``loss``: table -> TableLoss), which
    the release states in ``datapackage.json`` and on its page."""
    written: dict[str, int] = {}
    with warehouse.connect() as session:
        ensure_schema(session, warehouse.dialect)
        for name, table in tables.items():
            session.replace_table("published", name, table)
            written[name] = table.num_rows
        if loss is not None:
            rows = [
                {"table_name": name, **{_SNAKE[k]: v for k, v in item.as_dict().items()}}
                for name, item in loss.items()
            ]
            report = pa.Table.from_pylist(rows, schema=_REPORT_SCHEMA)
            session.replace_table("hub", "disclosure_report", report)
    return written


_SNAKE = {
    "cells": "cells",
    "withheldCells": "withheld_cells",
    "withheldShare": "withheld_share",
    "primary": "primary_cells",
    "secondary": "secondary_cells",
    "peopleWithheldShare": "people_withheld_share",
}
_REPORT_SCHEMA = pa.schema(
    [
        ("table_name", pa.string()),
        ("cells", pa.int64()),
        ("withheld_cells", pa.int64()),
        ("withheld_share", pa.float64()),
        ("primary_cells", pa.int64()),
        ("secondary_cells", pa.int64()),
        ("people_withheld_share", pa.float64()),
    ]
)


def disclosure_summary(warehouse: Warehouse) -> dict[str, Any]:
    """What a release says about its disclosure control: the relations the audit used and
    the information lost per table (from the last ``write_published``)."""
    from transforms.disclosure import RULES

    loss: dict[str, Any] = {}
    with warehouse.connect() as session:
        if session.table_exists("hub", "disclosure_report"):
            for row in session.arrow("SELECT * FROM hub.disclosure_report").to_pylist():
                name = row.pop("table_name")
                loss[name] = {camel: row[snake] for camel, snake in _SNAKE.items()}
    return {
        "method": "primary suppression below the threshold (0 included), secondary "
        "suppression until an integer-programming attack over every relation below cannot "
        "narrow any withheld count to a range narrower than the threshold",
        "relations": [{"name": k, "description": v} for k, v in RULES.items()],
        "informationLoss": loss,
    }
