"""Canonical build, linkage and published counts, checked by hand, on both warehouses.

Every test runs on a real DuckDB file and on a real PostgreSQL database: the SQL models are
written once and transpiled by sqlglot, so both must give the same figures.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from connectors.taxonomy import load_taxonomy
from tests.transforms import scenario
from transforms.canonical import build_member
from transforms.linkage import link_people
from transforms.publish import compute_counts
from transforms.warehouse import DuckDBWarehouse, PostgresWarehouse, Warehouse

TAXONOMY = load_taxonomy()


@pytest.fixture(params=["duckdb", "postgres"])
def built(request: pytest.FixtureRequest, tmp_path: Path) -> Warehouse:
    target: Warehouse = (
        DuckDBWarehouse(tmp_path / "warehouse.duckdb")
        if request.param == "duckdb"
        else PostgresWarehouse(request.getfixturevalue("postgres_dsn"))
    )
    warehouse, members = scenario.build(tmp_path, target)
    for member in members.values():
        build_member(warehouse, member)
    link_people(warehouse)
    return warehouse


def _rows(warehouse: Warehouse, sql: str) -> list[tuple]:
    with warehouse.connect() as session:
        return session.fetchall(sql)


def test_canonical_rows_and_mapped_labels(built: Warehouse) -> None:
    counts = dict(_rows(built, "SELECT org_id, COUNT(*) FROM canonical.engagement GROUP BY 1"))
    assert counts == {"alpha": 7, "beta": 6}  # alpha's "On hold" row is quarantined
    statuses = _rows(built, "SELECT DISTINCT org_id, status FROM canonical.engagement ORDER BY 1")
    assert statuses == [("alpha", "active"), ("beta", "completed")]
    programmes = _rows(
        built,
        "SELECT DISTINCT programme_source_id FROM canonical.engagement WHERE org_id = 'alpha'",
    )
    assert programmes == [("Tenancy Support",)]  # "tenancy  support" matched the mapping
    codes = _rows(
        built,
        "SELECT outcome_code, status, COUNT(*) FROM canonical.outcome GROUP BY 1, 2 ORDER BY 1, 2",
    )
    assert codes == [
        ("debt_reduced", "achieved", 5),
        ("debt_reduced", "not_achieved", 1),
        ("tenancy_sustained", "achieved", 5),
        ("tenancy_sustained", "progressing", 1),
    ]


def test_quarantine_names_row_column_and_fix(built: Warehouse) -> None:
    rows = _rows(
        built,
        "SELECT org_id, entity, source_id, column_name, raw_value, reason, "
        "severity, stage FROM quarantine.rejected_rows ORDER BY org_id, entity",
    )
    assert len(rows) == 3
    on_hold, loaded, orphan = rows
    assert loaded[:5] == ("alpha", "person", "A8", "DOB", "31/02/1990") and loaded[7] == "load"
    assert on_hold[:5] == ("alpha", "engagement", "EX", "status", "On hold")
    assert "mappings.engagement_status in members/alpha.yaml" in on_hold[5]
    assert orphan[:4] == ("beta", "service_delivery", "SX", "person_source_id")
    assert "'B99' is not in the people file" in orphan[5]
    by_rule = _rows(
        built, "SELECT rule, COUNT(*) FROM quarantine.rejected_rows GROUP BY rule ORDER BY rule"
    )
    assert by_rule == [
        ("date.invalid", 1),
        ("map.engagement_status_unmapped", 1),
        ("ref.person_missing", 1),
    ]


def test_linkage_respects_consent(built: Warehouse) -> None:
    keys = dict(_rows(built, "SELECT org_id || ':' || source_id, person_key FROM hub.person_link"))
    assert keys["alpha:A1"] == keys["beta:B1"]  # case differs
    assert keys["alpha:A2"] == keys["beta:B2"]  # spacing differs
    assert keys["alpha:A3"] == keys["beta:B3"]
    assert keys["alpha:A7"] != keys["beta:B4"]  # A7 did not consent to share
    assert len(set(keys.values())) == 10
    # Keys are random (p_ + 16 hex digits): nothing of the person or the record is in them.
    assert all(re.fullmatch(r"p_[0-9a-f]{16}", k) for k in keys.values())


def test_person_keys_survive_a_rebuild(built: Warehouse, tmp_path: Path) -> None:
    before = dict(_rows(built, "SELECT source_id, person_key FROM hub.person_link"))
    link_people(built)
    after = dict(_rows(built, "SELECT source_id, person_key FROM hub.person_link"))
    assert before == after


def test_rebuilding_one_member_leaves_the_other(built: Warehouse, tmp_path: Path) -> None:
    _, members = scenario.build(tmp_path / "again")
    before = _rows(
        built, "SELECT * FROM canonical.engagement WHERE org_id = 'beta' ORDER BY source_id"
    )
    build_member(built, members["alpha"])
    after = _rows(
        built, "SELECT * FROM canonical.engagement WHERE org_id = 'beta' ORDER BY source_id"
    )
    assert before == after


def test_counts_match_hand_computation(built: Warehouse) -> None:
    # Threshold 1 names every district (M15 has 2 people); rows of zeros (the full grid) are
    # left out of the comparison and checked below.
    counts = compute_counts(built, threshold=1)
    assert counts.periods == ["2025-Q1"]
    summary = {
        (r["area"], r["outcome_area"], r["outcome_code"]): (
            r["organisations"],
            r["people_engaged"],
            r["people_achieving"],
            r["engagements"],
            r["deliveries"],
        )
        for r in counts.outcomes_summary.to_pylist()
        if r["people_engaged"]
    }
    # organisations is given on 'all' area rows only (per district it would say whether
    # anyone from there was counted).
    assert summary == {
        ("M14", "housing", "all"): (None, 7, 5, 7, 0),
        ("M14", "housing", "tenancy_sustained"): (None, 6, 5, None, None),
        ("all", "housing", "all"): (1, 7, 5, 7, 0),
        ("all", "housing", "tenancy_sustained"): (1, 6, 5, None, None),
        ("M14", "financial_inclusion", "all"): (None, 4, 4, 4, 4),
        ("M14", "financial_inclusion", "debt_reduced"): (None, 4, 4, None, None),
        ("M15", "financial_inclusion", "all"): (None, 2, 1, 2, 1),
        ("M15", "financial_inclusion", "debt_reduced"): (None, 2, 1, None, None),
        ("all", "financial_inclusion", "all"): (1, 6, 5, 6, 5),
        ("all", "financial_inclusion", "debt_reduced"): (1, 6, 5, None, None),
    }
    # The full grid: every area of the quarter (with other and unknown) times every outcome
    # area and code of the taxonomy, zeros included.
    taxonomy_rows = len(TAXONOMY.outcomes) + len(set(TAXONOMY.outcomes.values()))
    assert counts.outcomes_summary.num_rows == 5 * taxonomy_rows
    zero = next(
        r for r in counts.outcomes_summary.to_pylist() if r["outcome_code"] == "job_started"
    )
    assert zero["people_engaged"] == 0 and zero["engagements"] is None
    reach = {
        r["area"]: (r["people"], r["served_by_1"], r["served_by_2"], r["served_by_3_plus"])
        for r in counts.cross_org_reach.to_pylist()
    }
    assert reach == {
        "M14": (8, 5, 3, 0),
        "M15": (2, 2, 0, 0),
        "other": (0, 0, 0, 0),
        "unknown": (0, 0, 0, 0),
        "all": (10, 7, 3, 0),
    }
    # At the real threshold, M15's two people are counted in 'other', never named.
    named = compute_counts(built, threshold=5)
    reach = {r["area"]: r["people"] for r in named.cross_org_reach.to_pylist()}
    assert reach == {"M14": 8, "other": 2, "unknown": 0, "all": 10}
    orgs = {
        r["org_id"]: (r["records_loaded"], r["records_quarantined"])
        for r in counts.organisation_summary.to_pylist()
    }
    # alpha: 7 people + 1 programme + 7 engagements + 6 outcomes; beta: 6 + 1 + 6 + 5 + 6
    assert orgs == {"alpha": (21, 2), "beta": (24, 1)}


def test_only_uk_postcodes_become_areas(built: Warehouse) -> None:
    """A member's postcode column may hold anything (a foreign postcode, an e-mail, free
    text): only a UK postcode becomes an area, whatever its case or spacing."""
    with built.connect() as session:
        people = session.fetchall(
            "SELECT org_id, source_id FROM canonical.person ORDER BY org_id, source_id"
        )
        odd = ["jo.bloggs@example.org", "10115", "Flat 2, High St", " m14  4ab "]
        for (org_id, source_id), postcode in zip(people, itertools.cycle(odd), strict=False):
            session.execute(
                "UPDATE canonical.person SET postcode = ? WHERE org_id = ? AND source_id = ?",
                [postcode, org_id, source_id],
            )
    counts = compute_counts(built, threshold=1)  # name every district, however small
    areas = {
        *counts.outcomes_summary.column("area").to_pylist(),
        *counts.cross_org_reach.column("area").to_pylist(),
    }
    assert all(re.fullmatch(r"[A-Z]{1,2}[0-9][A-Z0-9]?|other|unknown|all", a) for a in areas)
    assert {"unknown", "M14", "other", "all"} == areas  # " m14  4ab " is M14; rest unknown
