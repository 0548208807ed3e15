"""CiviCRM cases and activities, loaded over real HTTP from the sandbox, become engagements,
service deliveries and outcomes.

Expected rows are worked out here in plain Python from the sandbox's own tables (option
values translated with the sandbox's option lists), not from the SQL; the same raw tables
are then built on a real PostgreSQL database, which must agree row for row.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.civicrm import civicrm_source, raw_pipeline
from connectors.members import load_member
from sandboxes.civicrm import OPTIONS, CiviCRMSandbox
from tests.transforms.rawdata import canonical_rows, copy_raw_dataset
from transforms.canonical import build_member
from transforms.warehouse import DuckDBWarehouse, PostgresWarehouse, Warehouse

ORG = "bridge_centre"
PROGRAMMES = {"housing_support": "housing"}  # money_advice cases stay unmapped on purpose
TWO_PROGRAMMES = {"housing_support": "housing", "money_advice": "financial_inclusion"}
CASE_STATUS = {"Open": "active", "Closed": "completed"}  # "Urgent" is unmapped
OUTCOMES = {"tenancy_sustained": "tenancy_sustained", "debt_reduced": "debt_reduced"}
OUTCOME_STATUS = {
    "achieved": "achieved",
    "progressing": "progressing",
    "not_achieved": "not_achieved",
}
DELIVERY_TYPES = {"Meeting", "Advice Session"}  # phone calls are not counted here


def _name(options: str, value: Any) -> str | None:
    return OPTIONS[options][value][0] if value is not None else None


class Site:
    """The sandbox's tables after the test's edits, and what the hub should make of them."""

    def __init__(self, civi: CiviCRMSandbox) -> None:
        self.t = {
            name: {k: dict(v) for k, v in rows.items()} for name, rows in civi.data.tables.items()
        }

    def individual(self, contact_id: int) -> bool:
        c = self.t["Contact"].get(contact_id)
        return bool(c) and c.get("contact_type", "Individual") == "Individual"

    def programme(self, case_id: int | None) -> str | None:
        case = self.t["Case"].get(case_id) if case_id is not None else None
        name = _name("case_type", case["case_type_id"]) if case else None
        return name if name in PROGRAMMES else None

    def engagements(self) -> dict[str, tuple]:
        out = {}
        for cc in self.t["CaseContact"].values():
            case = self.t["Case"][cc["case_id"]]
            status = CASE_STATUS.get(_name("case_status", case["status_id"]) or "")
            if case["is_deleted"] or not self.individual(cc["contact_id"]) or not status:
                continue
            if self.programme(case["id"]) and case["start_date"]:
                out[f"{case['id']}:{cc['contact_id']}"] = (
                    str(cc["contact_id"]),
                    self.programme(case["id"]),
                    status,
                    date.fromisoformat(case["start_date"]),
                )
        return out

    def _targets(self) -> list[tuple[dict[str, Any], int]]:
        return [
            (self.t["Activity"][ac["activity_id"]], ac["contact_id"])
            for ac in self.t["ActivityContact"].values()
            if _name("record_type", ac["record_type_id"]) == "Activity Targets"
        ]

    def deliveries(self) -> dict[str, tuple]:
        out = {}
        for a, contact in self._targets():
            kind = _name("activity_type", a["activity_type_id"])
            if (
                kind not in DELIVERY_TYPES
                or _name("activity_status", a["status_id"]) != "Completed"
            ):
                continue
            if self.individual(contact) and self.programme(a["case_id"]):
                out[f"{a['id']}:{contact}"] = (
                    str(contact),
                    self.programme(a["case_id"]),
                    kind,
                    datetime.fromisoformat(a["activity_date_time"]).date(),
                    float(a["duration"]),
                )
        return out

    def outcomes(self) -> dict[str, tuple]:
        out = {}
        for a, contact in self._targets():
            code = OUTCOMES.get(_name("outcome", a["Outcomes.outcome"]) or "")
            status = OUTCOME_STATUS.get(_name("outcome_status", a["Outcomes.status"]) or "")
            on_case = a["case_id"] is not None
            if not (code and status and self.individual(contact)):
                continue
            if on_case and not self.programme(a["case_id"]):
                continue
            out[f"{a['id']}:{contact}"] = (
                str(contact),
                self.programme(a["case_id"]) if on_case else None,
                code,
                status,
                datetime.fromisoformat(a["activity_date_time"]).date(),
            )
        return out


def _write_member(tmp_path: Path, civi: CiviCRMSandbox, mappings: dict, **connector) -> Path:
    """members/<ORG>.yaml for a CiviCRM member reading the sandbox ``civi``."""
    (tmp_path / "members").mkdir(exist_ok=True)
    path = tmp_path / "members" / f"{ORG}.yaml"
    config = {
        "name": "Bridge Centre",
        "connector": {
            "kind": "civicrm",
            "site_url": civi.url,
            "api_key": {"env": "HUB_BRIDGE_CENTRE_K"},
            **connector,
        },
        "mappings": mappings,
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("civi")
    with CiviCRMSandbox(contacts=40, activities_per_contact=3, cases_per_contact=0.7) as civi:
        path = _write_member(
            tmp,
            civi,
            {
                "programmes": PROGRAMMES,
                "engagement_status": CASE_STATUS,
                "outcomes": OUTCOMES,
                "outcome_status": OUTCOME_STATUS,
            },
            delivery_activity_types=sorted(DELIVERY_TYPES),
        )
        member = load_member(path)
        urgent = min(
            c for c in civi.data.tables["Case"] if civi.data.tables["Case"][c]["case_type_id"] == 1
        )
        civi.edit("Case", urgent, status_id=3)  # "Urgent": not mapped, so quarantined
        site = Site(civi)
        warehouse = DuckDBWarehouse(tmp / "warehouse.duckdb")
        pipeline = raw_pipeline(ORG, warehouse.dlt_destination(), tmp / "dlt")
        pipeline.run(civicrm_source(member.connector.settings(), civi.api_key))
    build_member(warehouse, member)
    return site, member, warehouse, urgent


def _fetch(warehouse: Warehouse, sql: str) -> list[tuple]:
    with warehouse.connect() as session:
        return session.fetchall(sql)


def test_cases_activities_and_outcomes_match_the_site(built) -> None:
    site, _member, warehouse, _urgent = built
    programmes = _fetch(warehouse, "SELECT source_id, name, outcome_area FROM canonical.programme")
    assert programmes == [("housing_support", "housing_support", "housing")]
    engagements = {
        r[0]: r[1:]
        for r in _fetch(
            warehouse,
            "SELECT source_id, person_source_id, programme_source_id, status, start_date "
            "FROM canonical.engagement",
        )
    }
    assert engagements == site.engagements() and engagements
    deliveries = {
        r[0]: r[1:]
        for r in _fetch(
            warehouse,
            "SELECT source_id, person_source_id, programme_source_id, service_name, "
            "delivered_on, quantity FROM canonical.service_delivery",
        )
    }
    assert deliveries == site.deliveries() and deliveries
    assert {
        r[0] for r in _fetch(warehouse, "SELECT DISTINCT unit FROM canonical.service_delivery")
    } == {"minutes"}
    outcomes = {
        r[0]: r[1:]
        for r in _fetch(
            warehouse,
            "SELECT source_id, person_source_id, programme_source_id, outcome_code, status, "
            "measured_on FROM canonical.outcome",
        )
    }
    assert outcomes == site.outcomes() and outcomes


def test_what_cannot_be_mapped_is_quarantined_with_the_fix(built) -> None:
    site, _member, warehouse, urgent = built
    rows = _fetch(
        warehouse,
        "SELECT entity, source_file, source_id, column_name, raw_value, reason "
        "FROM quarantine.rejected_rows WHERE severity = 'error'",
    )
    urgent_rows = [r for r in rows if r[1] == "Case" and r[2].startswith(f"{urgent}:")]
    assert [(r[3], r[4]) for r in urgent_rows] == [("status_id", "Urgent")]
    assert (
        "add it under mappings.engagement_status in members/bridge_centre.yaml" in urgent_rows[0][5]
    )
    # Every case client not engaged is explained; so is every counted-type activity.
    cases = {r[2] for r in rows if r[0] == "engagement"}
    assert cases == {
        f"{cc['case_id']}:{cc['contact_id']}" for cc in site.t["CaseContact"].values()
    } - set(site.engagements())
    money = [r for r in rows if r[0] == "service_delivery" and r[4] == "money_advice"]
    assert money and all("mappings.programmes" in r[5] for r in money)
    unfiled = [r for r in rows if r[0] == "service_delivery" and r[3] == "case_id" and r[4] is None]
    assert unfiled and all("not filed on a case" in r[5] for r in unfiled)
    unmapped = [r for r in rows if r[0] == "outcome" and r[3] == "Outcomes.outcome"]
    assert unmapped and {r[4] for r in unmapped} == {"felt_listened_to"}


def test_a_trashed_case_is_deleted_in_the_hub(tmp_path: Path) -> None:
    with CiviCRMSandbox(contacts=10, cases_per_contact=1.0) as civi:
        path = _write_member(
            tmp_path,
            civi,
            {"programmes": TWO_PROGRAMMES, "engagement_status": CASE_STATUS},
        )
        member = load_member(path)
        warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
        pipeline = raw_pipeline(ORG, warehouse.dlt_destination(), tmp_path / "dlt")
        pipeline.run(civicrm_source(member.connector.settings(), civi.api_key))
        build_member(warehouse, member)
        case_id = min(civi.data.tables["Case"])
        civi.edit("Case", case_id, is_deleted=True)
        pipeline.run(civicrm_source(member.connector.settings(), civi.api_key))
    build_member(warehouse, member)
    rows = _fetch(
        warehouse,
        f"SELECT is_deleted FROM canonical.engagement WHERE source_id LIKE '{case_id}:%'",
    )
    assert rows == [(True,)]
    reasons = _fetch(
        warehouse, "SELECT COUNT(*) FROM quarantine.rejected_rows WHERE source_file = 'Case'"
    )
    assert reasons == [(0,)]  # a deleted case is not a problem to fix


def test_a_case_deleted_for_good_under_surviving_activities_is_a_reason_not_a_failure(
    tmp_path: Path,
) -> None:
    """Issue #19: the deleted case's marker row has no case type; the reason for its
    activities was built with ``|| NULL ||``, was NULL, and failed every later mapping."""
    with CiviCRMSandbox(contacts=10, cases_per_contact=1.0, activities_per_contact=4) as civi:
        mappings = {
            "programmes": TWO_PROGRAMMES,
            "engagement_status": {**CASE_STATUS, "Urgent": "active"},
            "outcomes": {**OUTCOMES, "felt_listened_to": "felt_listened_to"},
            "outcome_status": OUTCOME_STATUS,
        }
        member = load_member(_write_member(tmp_path, civi, mappings))
        warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
        pipeline = raw_pipeline(ORG, warehouse.dlt_destination(), tmp_path / "dlt")
        pipeline.run(civicrm_source(member.connector.settings(), civi.api_key))
        build_member(warehouse, member)
        filed = [a for a in civi.data.tables["Activity"].values() if a.get("case_id")]
        case_id = filed[0]["case_id"]
        civi.hard_delete("Case", case_id)  # its activities stay in CiviCRM
        pipeline.run(civicrm_source(member.connector.settings(), civi.api_key, reconcile=True))
    for _ in range(2):  # and every run after
        build_member(warehouse, member)
    reasons = _fetch(
        warehouse,
        "SELECT reason FROM quarantine.rejected_rows "
        f"WHERE source_file = 'Activity' AND raw_value = '{case_id}'",
    )
    assert reasons, "the deleted case's activities are not reported"
    assert all(f"case {case_id}, which was deleted in CiviCRM" in r for (r,) in reasons)
    assert not _fetch(warehouse, "SELECT 1 FROM quarantine.rejected_rows WHERE reason IS NULL")


def test_a_contact_deleted_for_good_takes_their_records_with_them(tmp_path: Path) -> None:
    """After the next run (default settings) neither the person nor their engagements,
    deliveries and outcomes are live, though CaseContact and ActivityContact rows are
    compared only every reconcile_every_runs runs: the person's marker row is enough."""
    with CiviCRMSandbox(contacts=10, cases_per_contact=1.0, activities_per_contact=4) as civi:
        path = _write_member(
            tmp_path,
            civi,
            {
                "programmes": TWO_PROGRAMMES,
                "engagement_status": {**CASE_STATUS, "Urgent": "active"},
                "outcomes": {**OUTCOMES, "felt_listened_to": "felt_listened_to"},
                "outcome_status": OUTCOME_STATUS,
            },
        )
        member = load_member(path)
        warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
        pipeline = raw_pipeline(ORG, warehouse.dlt_destination(), tmp_path / "dlt")
        pipeline.run(civicrm_source(member.connector.settings(), civi.api_key))
        build_member(warehouse, member)
        counts = {
            table: _fetch(
                warehouse,
                f"SELECT person_source_id, count(*) FROM canonical.{table} "
                "WHERE NOT is_deleted GROUP BY ALL",
            )
            for table in ("engagement", "service_delivery", "outcome")
        }
        everywhere = set.intersection(*({p for p, _ in rows} for rows in counts.values()))
        gone = min(everywhere)  # has an engagement, a delivery and an outcome
        civi.hard_delete("Contact", int(gone))
        pipeline.run(civicrm_source(member.connector.settings(), civi.api_key))
    build_member(warehouse, member)
    for table in ("engagement", "service_delivery", "outcome"):
        # Gone (a re-read case or activity lost its client) or flagged deleted: never live.
        rows = _fetch(
            warehouse,
            f"SELECT count(*) FROM canonical.{table} "
            f"WHERE person_source_id = '{gone}' AND NOT is_deleted",
        )
        assert rows == [(0,)], table
        live = _fetch(
            warehouse,
            f"SELECT person_source_id, count(*) FROM canonical.{table} "
            "WHERE NOT is_deleted GROUP BY ALL",
        )
        assert sorted(live) == sorted(r for r in counts[table] if r[0] != gone), table
    person = _fetch(
        warehouse,
        "SELECT is_deleted, given_name, family_name, birth_date, email, phone, postcode "
        f"FROM canonical.person WHERE source_id = '{gone}'",
    )
    assert person == [(True, None, None, None, None, None, None)]


def test_postgresql_builds_the_same_rows(built, postgres_dsn: str) -> None:
    _site, member, duck, _urgent = built
    pg = PostgresWarehouse(postgres_dsn)
    copy_raw_dataset(duck.path, f"raw_{ORG}", pg)
    build_member(pg, member)
    assert canonical_rows(pg) == canonical_rows(duck)
