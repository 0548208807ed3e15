"""Compute the published tables from the canonical model and hub links.

Counting is SQL (``sql/published/*.sql``); disclosure control is applied afterwards in
Python (``transforms.disclosure``) because secondary suppression is iterative. Only the
disclosure-controlled tables are written to the ``published`` schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from connectors.taxonomy import Taxonomy, load_taxonomy
from transforms import sql
from transforms.canonical import ensure_schema
from transforms.periods import quarters_between
from transforms.release_plan import ReleasePlan
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


@dataclass
class PreparedRelease:
    """The published tables of one release and how they came about."""

    version: str
    plan: ReleasePlan
    tables: dict[str, pa.Table]
    loss: dict[str, Any]
    pending_revisions: list[str]
    periods: list[str]  # every quarter counted now, published or not
    control: Any  # transforms.disclosure.ControlResult for the quarters counted now
    # Quarters revised because an erasure asked (hub forget, hub remove-member), and those an
    # erasure asked for that could not be revised safely (or have no counts left) this time.
    erasure_revised: list[str] = field(default_factory=list)
    erasure_waiting: list[str] = field(default_factory=list)


def _only_periods(tables: dict[str, pa.Table], periods: tuple[str, ...]) -> dict[str, pa.Table]:
    import pyarrow.compute as pc

    wanted = pa.array(sorted(periods), pa.string())
    return {
        name: table.filter(pc.is_in(table.column("period"), wanted))
        if "period" in table.column_names
        else table
        for name, table in tables.items()
    }


def _rows_differ(a: pa.Table, b: pa.Table) -> bool:
    def key(row: dict[str, Any]) -> tuple[str, ...]:
        return tuple(str(row[k]) for k in sorted(row))

    return sorted(map(key, a.to_pylist())) != sorted(map(key, b.to_pylist()))


def prepare_release(
    warehouse: Warehouse,
    *,
    threshold: int,
    version: str,
    today: date,
    revise: list[str] | tuple[str, ...] = (),
    provisional: bool = False,
) -> PreparedRelease:
    """Count, plan and disclosure-control release ``version``, then write ``published.*``.

    Quarters published before are repeated unchanged unless revised; a revision is
    controlled together with every earlier version of its quarter (``history``). A quarter
    that has not ended is left out (unless ``provisional``); with none ended yet, the
    release has the members' table and no quarter. Raises ``PlanError`` when a revision is
    not possible, and ``DisclosureError`` when a revision cannot be made safe (refused).
    """
    from transforms.disclosure import DisclosureError, control_release, history
    from transforms.disclosure.control import measure_loss
    from transforms.erasure import mark_revised, queued_revisions
    from transforms.release_plan import plan_release

    counts = compute_counts(warehouse, threshold=threshold)
    now_tables = counted_tables(counts)
    taken = history.recorded_versions(warehouse)
    base, n = version, 1
    while version in taken:  # two releases within one second: keep versions unique
        n += 1
        version = f"{base}.{n}"
    before = history.published_periods(warehouse)
    with warehouse.connect() as session:
        asked = queued_revisions(session)
    # An erasure's quarters are revised with the next release when they can be: published,
    # still counted, and safe together with their earlier versions. Otherwise they wait.
    erasure = sorted(p for p in asked if p in before and p in counts.periods and p not in revise)

    def attempt(extra: list[str]) -> tuple[ReleasePlan, dict[str, pa.Table], Any]:
        plan = plan_release(
            counts.periods,
            set(before),
            today=today,
            revise=[*revise, *extra],
            provisional=provisional,
        )
        current = _only_periods(now_tables, plan.counted_now)
        controlled = control_release(
            current,
            threshold=threshold,
            history=history.earlier_releases(warehouse, plan.revised),
        )
        return plan, current, controlled

    try:
        plan, current, controlled = attempt(erasure)
    except DisclosureError:
        if not erasure:
            raise
        erasure = []  # the operator's own revisions, if any, still decide the release
        plan, current, controlled = attempt([])
    frozen_published, frozen_truth = history.frozen(warehouse, plan.carried)
    tables: dict[str, pa.Table] = {}
    truth: dict[str, pa.Table] = {}
    for name in PUBLISHED_TABLES:
        parts = [controlled.tables[name]]
        true_parts = [current[name]]
        if name in frozen_published:
            parts.insert(0, frozen_published[name].cast(controlled.tables[name].schema))
            true_parts.insert(0, frozen_truth[name].cast(current[name].schema))
        tables[name] = _sorted(pa.concat_tables(parts))
        truth[name] = _sorted(pa.concat_tables(true_parts))
    pending = [
        period
        for period in plan.carried
        if period in counts.periods
        and any(
            _rows_differ(
                _only_periods({n: now_tables[n]}, (period,))[n],
                _only_periods({n: frozen_truth[n]}, (period,))[n],
            )
            for n in frozen_truth
        )
    ]
    loss = measure_loss(tables, truth, threshold=threshold)
    history.record(warehouse, version, plan, controlled.tables, current, datetime.now(UTC))
    with warehouse.connect() as session:
        mark_revised(session, plan.revised, version)
    write_published(warehouse, tables, loss)
    with warehouse.connect() as session:
        for name, table in truth.items():
            session.replace_table("hub", f"release_truth_latest_{name}", table)
        meta = {
            "version": version,
            "new": list(plan.new),
            "revised": list(plan.revised),
            "carried": list(plan.carried),
            "provisional": list(plan.provisional),
            "held": list(plan.held),
            "pending_revisions": pending,
        }
        session.replace_table(
            "hub",
            "release_meta",
            pa.Table.from_pylist([{"version": version, "plan": json.dumps(meta)}]),
        )
    return PreparedRelease(
        version=version,
        plan=plan,
        tables=tables,
        loss=loss,
        pending_revisions=pending,
        periods=counts.periods,
        control=controlled,
        erasure_revised=erasure,
        erasure_waiting=sorted(asked - set(plan.revised)),
    )


def _sorted(table: pa.Table) -> pa.Table:
    keys = [c for c in ("period", "area", "outcome_area", "outcome_code", "org_id")]
    present = [k for k in keys if k in table.column_names]
    return table.sort_by([(k, "ascending") for k in present]) if present else table


def release_meta(warehouse: Warehouse) -> dict[str, Any] | None:
    """The plan of the release last prepared (``prepare_release``), or None."""
    with warehouse.connect() as session:
        if not session.table_exists("hub", "release_meta"):
            return None
        rows = session.fetchall("SELECT plan FROM hub.release_meta")
    return json.loads(rows[0][0]) if rows else None


def release_truth(warehouse: Warehouse) -> dict[str, pa.Table]:
    """The counts behind every value of the last prepared release (frozen quarters' from
    when they were counted)."""
    with warehouse.connect() as session:
        return {
            name: session.arrow(f"SELECT * FROM hub.release_truth_latest_{name}")
            for name in PUBLISHED_TABLES
            if session.table_exists("hub", f"release_truth_latest_{name}")
        }


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
    meta = release_meta(warehouse) or {}
    versions = {}
    try:
        from transforms.disclosure.history import published_periods

        versions = published_periods(warehouse)
    except Exception:  # no history yet
        versions = {}
    periods = []
    for period in sorted(
        {*meta.get("new", []), *meta.get("revised", []), *meta.get("carried", [])}
    ):
        status = (
            "revised"
            if period in meta.get("revised", [])
            else "new"
            if period in meta.get("new", [])
            else "carried"
        )
        counted = versions.get(period, [])
        periods.append(
            {
                "period": period,
                "status": status,
                "valuesFrom": counted[-1][0] if counted else meta.get("version"),
                "provisional": bool(counted[-1][1]) if counted else False,
                "earlierVersions": [v for v, _ in counted[:-1]],
            }
        )
    return {
        "version": meta.get("version"),
        "periods": periods,
        "pendingRevisions": meta.get("pending_revisions", []),
        "openQuartersNotPublished": meta.get("held", []),
        "revisionPolicy": "A quarter is published once it has ended and is then frozen: "
        "later releases repeat its values unchanged. Late or corrected data for it is "
        "published only in an explicit revision, disclosure-controlled together with every "
        "earlier version of the quarter so that the change cannot single anyone out "
        "(refused otherwise). Provisional figures for a quarter not yet ended are published "
        "only on request and are frozen the same way.",
        "method": "primary suppression below the threshold (0 included), secondary "
        "suppression until an integer-programming attack over every relation below cannot "
        "narrow any withheld count to a range narrower than the threshold",
        "relations": [{"name": k, "description": v} for k, v in RULES.items()],
        "informationLoss": loss,
    }
