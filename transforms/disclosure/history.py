"""What earlier releases published, kept in the warehouse: frozen quarters and revisions.

For each release the hub records, per quarter it counted anew (new or revised), the rows it
published and the counts they came from (``hub.release_published_<table>`` and
``hub.release_truth_<table>``, with a ``version`` column), and for every quarter of the
release whether it was new, revised or carried (``hub.release_periods``). From these:

- a frozen quarter's rows are repeated from the last version that published it;
- a revision is audited against every earlier version of its quarter;
- the blocking check knows the counts behind every published value, including those of
  frozen quarters counted on older data.

Appending reads the table and writes it back, so it works on both warehouses; the tables
grow by one quarter's rows per new or revised quarter, not per release.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from transforms.disclosure.control import EarlierRelease
from transforms.release_plan import ReleasePlan
from transforms.warehouse import Warehouse

PERIOD_TABLES = ("outcomes_summary", "cross_org_reach")
_PERIODS_SCHEMA = pa.schema(
    [
        ("version", pa.string()),
        ("period", pa.string()),
        ("status", pa.string()),
        ("provisional", pa.bool_()),
        ("recorded_at", pa.timestamp("us")),
    ]
)


def _read(warehouse: Warehouse, table: str) -> pa.Table | None:
    with warehouse.connect() as session:
        if not session.table_exists("hub", table):
            return None
        return session.arrow(f"SELECT * FROM hub.{table}")


def _append(warehouse: Warehouse, table: str, rows: pa.Table) -> None:
    existing = _read(warehouse, table)
    if existing is not None and existing.num_rows:
        rows = pa.concat_tables([existing, rows.cast(existing.schema)])
    with warehouse.connect() as session:
        session.replace_table("hub", table, rows)


def _only(table: pa.Table, periods: Iterable[str]) -> pa.Table:
    return table.filter(pc.is_in(table.column("period"), pa.array(sorted(periods), pa.string())))


def published_periods(warehouse: Warehouse) -> dict[str, list[tuple[str, bool]]]:
    """Quarter -> the (version, provisional) of each release that counted it anew, oldest
    first (carried repeats are left out: they published nothing new)."""
    rows = _read(warehouse, "release_periods")
    out: dict[str, list[tuple[str, bool]]] = {}
    if rows is None:
        return out
    for row in sorted(rows.to_pylist(), key=lambda r: (r["recorded_at"], r["version"])):
        if row["status"] in ("new", "revised"):
            out.setdefault(row["period"], []).append((row["version"], bool(row["provisional"])))
    return out


def recorded_versions(warehouse: Warehouse) -> set[str]:
    """Every release version recorded so far."""
    rows = _read(warehouse, "release_periods")
    return set() if rows is None else set(rows.column("version").to_pylist())


def _versions_rows(
    warehouse: Warehouse, kind: str, name: str, picks: dict[str, list[str]]
) -> pa.Table | None:
    """Rows of ``hub.release_<kind>_<name>`` for each period's chosen versions."""
    table = _read(warehouse, f"release_{kind}_{name}")
    if table is None:
        return None
    periods, versions = table.column("period").to_pylist(), table.column("version").to_pylist()
    keep = [v in picks.get(p, ()) for p, v in zip(periods, versions, strict=True)]
    return table.filter(pa.array(keep, pa.bool_()))


def frozen(
    warehouse: Warehouse, periods: Iterable[str]
) -> tuple[dict[str, pa.Table], dict[str, pa.Table]]:
    """The published rows and true counts of frozen ``periods``, each from the last version
    that counted it: ``(published, truth)`` tables by name, without the version column."""
    versions = published_periods(warehouse)
    return _picked(warehouse, {p: [versions[p][-1][0]] for p in periods if p in versions})


def _picked(
    warehouse: Warehouse, picks: dict[str, list[str]]
) -> tuple[dict[str, pa.Table], dict[str, pa.Table]]:
    """The published rows and the counts of each period's chosen versions, by table."""
    published: dict[str, pa.Table] = {}
    truth: dict[str, pa.Table] = {}
    for name in PERIOD_TABLES:
        for kind, out in (("published", published), ("truth", truth)):
            rows = _versions_rows(warehouse, kind, name, picks)
            if rows is not None:
                out[name] = rows.drop_columns(["version"])
    return published, truth


def earlier_releases(
    warehouse: Warehouse, periods: Iterable[str], *, before: str | None = None
) -> list[EarlierRelease]:
    """Every earlier version of each of ``periods`` (what a reader holding every release has),
    with the counts behind it, for auditing a revision against them; ``before``: leave out
    that version (the revision itself, once recorded)."""
    versions = published_periods(warehouse)
    by_version: dict[str, list[str]] = {}
    for period in periods:
        for version, _ in versions.get(period, []):
            if version != before:
                by_version.setdefault(version, []).append(period)
    out: list[EarlierRelease] = []
    for version, its_periods in sorted(by_version.items()):
        tables, truth = _picked(warehouse, {p: [version] for p in its_periods})
        out.append(EarlierRelease(version, tables, truth, tuple(sorted(its_periods))))
    return out


def record(
    warehouse: Warehouse,
    version: str,
    plan: ReleasePlan,
    published: dict[str, pa.Table],
    truth: dict[str, pa.Table],
    recorded_at: datetime,
) -> None:
    """Keep what release ``version`` publishes: the rows and counts of its new and revised
    quarters, and the status of every quarter in it."""
    for name in PERIOD_TABLES:
        for kind, tables in (("published", published), ("truth", truth)):
            rows = _only(tables[name], plan.counted_now)
            rows = rows.add_column(0, "version", pa.array([version] * rows.num_rows, pa.string()))
            _append(warehouse, f"release_{kind}_{name}", rows)
    status: list[dict[str, Any]] = [
        {
            "version": version,
            "period": period,
            "status": plan.status(period),
            "provisional": period in plan.provisional,
            "recorded_at": recorded_at,
        }
        for period in plan.published
    ]
    _append(warehouse, "release_periods", pa.Table.from_pylist(status, schema=_PERIODS_SCHEMA))
