"""Compute the published tables from the canonical model and hub links.

Counting is SQL (``sql/published/*.sql``); disclosure control is applied afterwards in
Python (``transforms.disclosure``) because secondary suppression is iterative. Only the
disclosure-controlled tables are written to the ``published`` schema.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def compute_counts(warehouse: Warehouse, taxonomy: Taxonomy | None = None) -> Counts:
    """Count people, engagements and deliveries per quarter and area (undisclosed)."""
    taxonomy = taxonomy or load_taxonomy()
    with warehouse.connect() as session:
        ensure_schema(session, warehouse.dialect)
        periods = _write_reference(session, taxonomy)
        session.execute("DROP TABLE IF EXISTS hub.activity")
        activity = sql.render("published/activity", dialect=warehouse.dialect)
        session.execute(f"CREATE TABLE hub.activity AS {activity}")
        tables = {
            name: session.arrow(sql.render(f"published/{name}", dialect=warehouse.dialect))
            for name in PUBLISHED_TABLES
        }
    return Counts(**tables, periods=periods)


def write_published(warehouse: Warehouse, tables: dict[str, pa.Table]) -> dict[str, int]:
    """Replace the ``published`` schema's tables with disclosure-controlled ones."""
    written: dict[str, int] = {}
    with warehouse.connect() as session:
        ensure_schema(session, warehouse.dialect)
        for name, table in tables.items():
            session.replace_table("published", name, table)
            written[name] = table.num_rows
    return written
