"""Member status (current or held back) and the organisation_summary it feeds, on DuckDB and
PostgreSQL: a failed member keeps its last good data and the published row says so, with a
fixed phrase and never the stored error text."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest

from tests.transforms import scenario
from transforms.canonical import build_member, ensure_schema, remove_members_not_in
from transforms.disclosure import control_release
from transforms.member_status import (
    clear_load_hold,
    mark_current,
    mark_held_back,
    member_statuses,
    members_with_data,
    nothing_to_publish,
)
from transforms.publish import compute_counts, counted_tables
from transforms.published_schema import HELD_BACK_REASON_PATTERN, ORGANISATION_SUMMARY
from transforms.warehouse import DuckDBWarehouse, PostgresWarehouse, Warehouse

SECRET_ERROR = (
    "alpha: /srv/hub/members/alpha/people.csv: column 'DOB' of row 7 is 'Ann Smith' "
    "(https://crm.example/login?token=s3cret)"
)


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Warehouse:
    if request.param == "duckdb":
        return DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    return PostgresWarehouse(request.getfixturevalue("postgres_dsn"))


def _empty(warehouse: Warehouse) -> Warehouse:
    with warehouse.connect() as session:
        ensure_schema(session, warehouse.dialect)
    return warehouse


def test_nothing_to_publish_until_a_member_has_data(warehouse: Warehouse, tmp_path: Path) -> None:
    _empty(warehouse)
    assert members_with_data(warehouse) == []
    assert nothing_to_publish(warehouse) == (
        "nothing to publish: no member has loaded data yet (no member's load brought any records)"
    )
    mark_held_back(warehouse, "alpha", "load", "alpha: people.csv is missing")
    why = nothing_to_publish(warehouse)
    assert why is not None and "all loads failed" in why and "people.csv is missing" in why
    status = member_statuses(warehouse)["alpha"]
    assert status.held_back and status.stage == "load" and status.last_good_load is None

    built, members = scenario.build(tmp_path, warehouse)
    build_member(built, members["alpha"])
    assert members_with_data(built) == ["alpha"]
    assert nothing_to_publish(built) is None


def test_held_back_member_keeps_its_last_good_load_and_data(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    built, members = scenario.build(tmp_path, warehouse)
    for member in members.values():
        build_member(built, member)
    good = datetime(2025, 3, 31, 12, 30)
    mark_current(built, "alpha", good)
    # beta has no status row yet: with canonical rows it counts as current.
    assert member_statuses(built)["beta"].status == "current"
    before = compute_counts(built).organisation_summary.to_pylist()

    mark_held_back(built, "alpha", "mapping", SECRET_ERROR + " " + "x" * 2000)
    mark_held_back(built, "beta", "load", "beta: credentials refused")
    statuses = member_statuses(built)
    alpha, beta = statuses["alpha"], statuses["beta"]
    assert alpha.held_back and alpha.stage == "mapping" and alpha.last_good_load == good
    assert alpha.reason.startswith(SECRET_ERROR) and len(alpha.reason) <= 500  # bounded
    assert alpha.failed_at is not None and alpha.failed_at > good
    assert beta.held_back and beta.last_good_load is not None  # taken from hub.member

    rows = {r["org_id"]: r for r in compute_counts(built).organisation_summary.to_pylist()}
    day = alpha.failed_at.date().isoformat()
    assert rows["alpha"]["status"] == "held_back"
    assert rows["alpha"]["held_back_reason"] == f"its last mapping failed on {day}"
    assert rows["beta"]["held_back_reason"].startswith("its last load failed on ")
    assert rows["alpha"]["last_good_load"] == good
    for row in rows.values():
        assert re.fullmatch(HELD_BACK_REASON_PATTERN, row["held_back_reason"])
        published = " ".join(str(v) for v in row.values())
        assert "csv" not in published and "http" not in published and "Ann" not in published
    # Their last good rows are still counted.
    assert [(r["org_id"], r["records_loaded"]) for r in before] == [
        (r["org_id"], rows[r["org_id"]]["records_loaded"]) for r in before
    ]
    counts = compute_counts(built)
    controlled = control_release(counted_tables(counts))  # publishable
    ORGANISATION_SUMMARY.conform(controlled.tables["organisation_summary"])

    later = datetime(2025, 4, 2, 8, 0)
    mark_current(built, "alpha", later)
    alpha = member_statuses(built)["alpha"]
    assert alpha.status == "current" and alpha.last_good_load == later
    assert alpha.reason is None and alpha.failed_at is None
    rows = {r["org_id"]: r for r in compute_counts(built).organisation_summary.to_pylist()}
    assert rows["alpha"]["status"] == "current" and rows["alpha"]["held_back_reason"] is None


def test_a_member_that_leaves_leaves_its_status(warehouse: Warehouse) -> None:
    _empty(warehouse)
    mark_held_back(warehouse, "gone", "load", "its file is missing")
    assert remove_members_not_in(warehouse, ["alpha"]) == ["gone"]
    assert member_statuses(warehouse) == {}


def test_stage_is_checked(warehouse: Warehouse) -> None:
    with pytest.raises(ValueError, match="stage"):
        mark_held_back(_empty(warehouse), "alpha", "linking", "no")


def test_an_unchanged_load_lifts_a_load_hold_but_not_a_mapping_hold(warehouse: Warehouse) -> None:
    _empty(warehouse)
    good = datetime(2025, 4, 1, 9, 0)
    mark_current(warehouse, "alpha", good)
    mark_held_back(warehouse, "alpha", "load", "its file is missing")
    assert clear_load_hold(warehouse, "alpha")
    alpha = member_statuses(warehouse)["alpha"]
    assert alpha.status == "current" and alpha.last_good_load == good
    assert not clear_load_hold(warehouse, "alpha")  # nothing to lift
    mark_held_back(warehouse, "alpha", "mapping", "a column is missing")
    assert not clear_load_hold(warehouse, "alpha")
    assert member_statuses(warehouse)["alpha"].status == "held_back"
