"""Synthetic networks for the disclosure tests: activity rows -> the published counts.

The counts come from the product's own SQL (``published/published_activity``,
``outcomes_summary``, ``cross_org_reach``) run on DuckDB over a generated ``hub.activity``,
so the relations are tested against what the hub really publishes. ``organisation_summary``
is built here (its SQL reads the canonical model): each member's records are its activity
rows, which is what the relation "records cover activity" needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from hypothesis import strategies as st

from connectors.taxonomy import load_taxonomy
from transforms import sql
from transforms.canonical import ensure_schema
from transforms.periods import quarter_bounds
from transforms.warehouse import DuckDBWarehouse

TAXONOMY = load_taxonomy()
AREAS = sorted(set(TAXONOMY.outcomes.values()))
CODES = {area: sorted(c for c, a in TAXONOMY.outcomes.items() if a == area) for area in AREAS}
STATUSES = ("achieved", "progressing", "not_achieved")


@dataclass(frozen=True)
class Activity:
    period: str
    kind: str  # engagement, delivery, outcome
    org_id: str
    person_key: str
    outcome_area: str
    outcome_code: str | None
    status: str | None
    area: str


@st.composite
def networks(
    draw: st.DrawFn,
    *,
    max_people: int = 60,
    max_members: int = 5,
    max_districts: int = 5,
    max_periods: int = 2,
    outcome_areas: int = 3,
) -> list[Activity]:
    """A random network: people with a district (or none), served by one or more members in
    one or more quarters, with engagements, deliveries and outcomes in a few outcome areas."""
    members = [f"org{i}" for i in range(draw(st.integers(2, max_members)))]
    districts = [f"M{10 + i}" for i in range(draw(st.integers(1, max_districts)))]
    periods = [f"2025-Q{q}" for q in range(1, draw(st.integers(1, max_periods)) + 1)]
    used_areas = AREAS[:outcome_areas]
    rows: list[Activity] = []
    for p in range(draw(st.integers(1, max_people))):
        person = f"p{p}"
        area = draw(st.sampled_from([*districts, "unknown"]))
        served_by = draw(st.lists(st.sampled_from(members), min_size=1, max_size=3, unique=True))
        for period in draw(st.lists(st.sampled_from(periods), min_size=1, unique=True)):
            for org in served_by:
                kind = draw(st.sampled_from(["engagement", "delivery", "outcome", "mixed"]))
                outcome_area = draw(st.sampled_from(used_areas))
                if kind in ("engagement", "mixed"):
                    rows.append(
                        Activity(period, "engagement", org, person, outcome_area, None, None, area)
                    )
                if kind in ("delivery", "mixed"):
                    for _ in range(draw(st.integers(1, 2))):
                        rows.append(
                            Activity(
                                period, "delivery", org, person, outcome_area, None, None, area
                            )
                        )
                if kind in ("outcome", "mixed"):
                    code = draw(st.sampled_from(CODES[outcome_area]))
                    status = draw(st.sampled_from(STATUSES))
                    rows.append(
                        Activity(period, "outcome", org, person, outcome_area, code, status, area)
                    )
    return rows


def counts_of(rows: list[Activity], folder: Path, *, threshold: int = 5) -> dict[str, pa.Table]:
    """The three published tables, before disclosure control, for ``rows``."""
    warehouse = DuckDBWarehouse(folder / "network.duckdb")
    periods = sorted({r.period for r in rows})
    with warehouse.connect() as session:
        ensure_schema(session, "duckdb")
        session.execute("DELETE FROM hub.outcome_taxonomy")
        for code, area in TAXONOMY.outcomes.items():
            session.execute(
                "INSERT INTO hub.outcome_taxonomy VALUES (?, ?, ?)",
                [code, area, TAXONOMY.outcome_labels[code]],
            )
        session.execute("DELETE FROM hub.period")
        for period in periods:
            year, quarter = int(period[:4]), int(period[-1])
            start, end = quarter_bounds(year, quarter)
            session.execute("INSERT INTO hub.period VALUES (?, ?, ?)", [period, start, end])
        session.execute("DROP TABLE IF EXISTS hub.activity")
        session.replace_table(
            "hub",
            "activity",
            pa.Table.from_pylist(
                [r.__dict__ for r in rows],
                schema=pa.schema(
                    [
                        ("period", pa.string()),
                        ("kind", pa.string()),
                        ("org_id", pa.string()),
                        ("person_key", pa.string()),
                        ("outcome_area", pa.string()),
                        ("outcome_code", pa.string()),
                        ("status", pa.string()),
                        ("area", pa.string()),
                    ]
                ),
            ),
        )
        session.execute("DROP TABLE IF EXISTS hub.published_activity")
        published_activity = sql.render(
            "published/published_activity", params={"threshold": str(threshold)}
        )
        session.execute(f"CREATE TABLE hub.published_activity AS {published_activity}")
        tables = {
            name: session.arrow(sql.render(f"published/{name}"))
            for name in ("outcomes_summary", "cross_org_reach")
        }
    members = sorted({r.org_id for r in rows})
    tables["organisation_summary"] = pa.Table.from_pylist(
        [
            {
                "org_id": m,
                "name": f"Member {m}",
                "records_loaded": sum(1 for r in rows if r.org_id == m),
                "records_quarantined": len(m) % 3,
                "last_refreshed": None,
                "status": "current",
                "last_good_load": None,
                "held_back_reason": None,
            }
            for m in members
        ],
        schema=pa.schema(
            [
                ("org_id", pa.string()),
                ("name", pa.string()),
                ("records_loaded", pa.int64()),
                ("records_quarantined", pa.int64()),
                ("last_refreshed", pa.timestamp("us", tz="UTC")),
                ("status", pa.string()),
                ("last_good_load", pa.timestamp("us", tz="UTC")),
                ("held_back_reason", pa.string()),
            ]
        ),
    )
    return tables
