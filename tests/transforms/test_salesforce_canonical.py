"""A Salesforce NPSP + PMM org, loaded over real HTTP from the sandbox, becomes canonical rows.

The expected rows are worked out here in plain Python from the sandbox's own records (the
org's truth), not from the SQL. The same raw tables are then copied into a real PostgreSQL
database and built there too: both warehouses must agree row for row.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.members import load_member
from connectors.salesforce_npsp import load_npsp, raw_pipeline
from sandboxes.salesforce_npsp import SalesforceSandbox, SandboxSizes
from tests.transforms.rawdata import canonical_rows, copy_raw_dataset
from transforms.canonical import build_member
from transforms.errors import TransformError
from transforms.linkage import link_people
from transforms.warehouse import DuckDBWarehouse, PostgresWarehouse, Warehouse

ORG = "acme_trust"
MAPPED_PROGRAMMES = {"Housing Support": "housing", "Employment Coaching": "employment"}
STAGES = {
    "Applied": "applied",
    "Active": "active",
    "Completed": "completed",
    "Withdrawn": "withdrawn",
}
OUTCOMES = {
    "Secured tenancy": "settled_accommodation",
    "Started job": "job_started",
    "Felt listened to": "felt_listened_to",
    "Improved wellbeing": "wellbeing_improved",
}
OUTCOME_STATUS = {
    "Achieved": "achieved",
    "In progress": "progressing",
    "Not achieved": "not_achieved",
}
ABSENT = {"Absent"}


def _member_yaml(path: Path, sf: SalesforceSandbox, **connector: Any) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "name": "Acme Trust",
                "connector": {
                    "kind": "salesforce_npsp",
                    "login_url": sf.url,
                    "client_id": sf.client_id,
                    "client_secret": {"env": "HUB_ACME_TRUST_SF_SECRET"},
                    "absent_statuses": sorted(ABSENT),
                    **connector,
                },
                "sharing": {"consent": "per_record"},
                "mappings": {
                    # "Food Bank" is left unmapped on purpose.
                    "programmes": MAPPED_PROGRAMMES,
                    "engagement_status": STAGES,
                    "outcomes": OUTCOMES,
                    "outcome_status": OUTCOME_STATUS,
                },
            }
        ),
        encoding="utf-8",
    )


class Org:
    """The sandbox's records after the test's edits, and what the hub should make of them."""

    def __init__(self, sf: SalesforceSandbox) -> None:
        self.records = {obj: dict(rows) for obj, rows in sf.state.records.items()}

    def rows(self, obj: str, deleted: bool = False) -> list[dict[str, Any]]:
        return [r for r in self.records[obj].values() if deleted or not r["IsDeleted"]]

    def program_name(self, program_id: str | None) -> str | None:
        rec = self.records["pmdm__Program__c"].get(program_id or "")
        return rec["Name"] if rec else None

    def engagements(self) -> dict[str, tuple]:
        contacts = self.records["Contact"]
        out = {}
        for e in self.rows("pmdm__ProgramEngagement__c"):
            if (
                e["pmdm__Contact__c"] in contacts
                and self.program_name(e["pmdm__Program__c"]) in MAPPED_PROGRAMMES
                and e["pmdm__Stage__c"] in STAGES
                and e["pmdm__StartDate__c"]
            ):
                out[e["Id"]] = (
                    e["pmdm__Contact__c"],
                    e["pmdm__Program__c"],
                    STAGES[e["pmdm__Stage__c"]],
                    date.fromisoformat(e["pmdm__StartDate__c"]),
                )
        return out

    def deliveries(self) -> tuple[dict[str, tuple], set[str]]:
        services = self.records["pmdm__Service__c"]
        counted, absent = {}, set()
        for d in self.rows("pmdm__ServiceDelivery__c"):
            service = services[d["pmdm__Service__c"]]
            if d["pmdm__AttendanceStatus__c"] in ABSENT:  # whatever its programme
                absent.add(d["Id"])
                continue
            if self.program_name(service["pmdm__Program__c"]) not in MAPPED_PROGRAMMES:
                continue
            counted[d["Id"]] = (
                d["pmdm__Contact__c"],
                service["pmdm__Program__c"],
                service["Name"],
                date.fromisoformat(d["pmdm__DeliveryDate__c"]),
                d["pmdm__Quantity__c"],
                "Session",
            )
        return counted, absent

    def outcomes(self) -> dict[str, tuple]:
        out = {}
        for o in self.rows("Outcome__c"):
            if (
                o["Outcome__c"] in OUTCOMES
                and o["Status__c"] in OUTCOME_STATUS
                and self.program_name(o["Program__c"]) in MAPPED_PROGRAMMES
            ):
                out[o["Id"]] = (
                    o["Contact__c"],
                    o["Program__c"],
                    OUTCOMES[o["Outcome__c"]],
                    OUTCOME_STATUS[o["Status__c"]],
                    date.fromisoformat(o["Measured_On__c"]),
                )
        return out


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory):
    """Load the org once (with a few deliberate problems), build it on DuckDB."""
    tmp = tmp_path_factory.mktemp("sf")
    (tmp / "members").mkdir()
    with SalesforceSandbox(sizes=SandboxSizes(contacts=30, engagements=40, deliveries=90)) as sf:
        _member_yaml(tmp / "members" / f"{ORG}.yaml", sf)
        member = load_member(tmp / "members" / f"{ORG}.yaml")
        engagements = sf.ids("pmdm__ProgramEngagement__c")
        outcomes = sf.ids("Outcome__c")
        contacts = sf.ids("Contact")
        # Problems the member must hear about: an unmapped stage, a missing start date, an
        # unmapped outcome label, a phone that cannot be a number; and a deleted contact.
        # Stamped a minute ago: a load reads up to a moment before now (changes committing
        # at that instant are the next run's), and this test wants them in the first load.
        at = datetime.now(UTC) - timedelta(minutes=1)
        sf.update_records(
            "pmdm__ProgramEngagement__c", [engagements[0]], {"pmdm__Stage__c": "On hold"}, at
        )
        sf.update_records(
            "pmdm__ProgramEngagement__c", [engagements[1]], {"pmdm__StartDate__c": None}, at
        )
        sf.update_records("Outcome__c", [outcomes[0]], {"Outcome__c": "Confidence up"}, at)
        sf.update_records("Contact", [contacts[1]], {"Phone": "12", "MailingPostalCode": None}, at)
        sf.delete_records("Contact", [contacts[0]], at)
        org = Org(sf)
        warehouse = DuckDBWarehouse(tmp / "warehouse.duckdb")
        pipeline = raw_pipeline(ORG, warehouse.dlt_destination(), tmp / "dlt")
        _info, report = load_npsp(
            pipeline, member.connector.settings(), member.connector.credentials()
        )
        report.close()
    build = build_member(warehouse, member)
    return org, member, warehouse, build, contacts


@pytest.fixture(scope="module", autouse=True)
def _secret(monkeypatch_module: pytest.MonkeyPatch) -> None:
    monkeypatch_module.setenv("HUB_ACME_TRUST_SF_SECRET", "sandbox-consumer-secret")


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def _fetch(warehouse: Warehouse, sql: str) -> list[tuple]:
    with warehouse.connect() as session:
        return session.fetchall(sql)


def test_people_from_contacts_with_household_postcode_and_consent(loaded) -> None:
    org, _member, warehouse, _build, contacts = loaded
    people = {
        r[0]: r[1:]
        for r in _fetch(
            warehouse,
            "SELECT source_id, is_deleted, given_name, phone, postcode, consent_to_share, "
            "source_system FROM canonical.person",
        )
    }
    assert set(people) == set(org.records["Contact"])  # deleted ones too, flagged
    deleted = people[contacts[0]]
    assert deleted[0] is True and deleted[1] is None and deleted[4] is False  # nothing kept
    for cid, rec in org.records["Contact"].items():
        if rec["IsDeleted"]:
            continue
        is_deleted, given, phone, postcode, consent, system = people[cid]
        assert (is_deleted, given, consent, system) == (
            False,
            rec["FirstName"],
            rec["Consent_To_Share__c"],
            "salesforce_npsp",
        )
        if cid == contacts[1]:
            assert phone is None  # "12" dropped, with a warning
            account = org.records["Account"][rec["AccountId"]]
            assert postcode == account["BillingPostalCode"]  # household address (None here)
        else:
            assert phone == "+447700900" + rec["Phone"][-3:]
            assert postcode == rec["MailingPostalCode"]


def test_programmes_engagements_deliveries_outcomes_match_the_org(loaded) -> None:
    org, _member, warehouse, build, _contacts = loaded
    programmes = dict(_fetch(warehouse, "SELECT name, outcome_area FROM canonical.programme"))
    assert programmes == MAPPED_PROGRAMMES
    engagements = {
        r[0]: r[1:]
        for r in _fetch(
            warehouse,
            "SELECT source_id, person_source_id, programme_source_id, status, start_date "
            "FROM canonical.engagement",
        )
    }
    assert engagements == org.engagements() and engagements
    counted, absent = org.deliveries()
    deliveries = {
        r[0]: r[1:]
        for r in _fetch(
            warehouse,
            "SELECT source_id, person_source_id, programme_source_id, service_name, "
            "delivered_on, quantity, unit FROM canonical.service_delivery",
        )
    }
    assert deliveries == counted and absent
    outcomes = {
        r[0]: r[1:]
        for r in _fetch(
            warehouse,
            "SELECT source_id, person_source_id, programme_source_id, outcome_code, status, "
            "measured_on FROM canonical.outcome",
        )
    }
    assert outcomes == org.outcomes() and outcomes
    assert build.rows["service_delivery"] == len(counted)


def test_every_record_left_out_is_quarantined_with_its_field_and_fix(loaded) -> None:
    org, _member, warehouse, _build, contacts = loaded
    rows = _fetch(
        warehouse,
        "SELECT entity, source_file, source_id, column_name, raw_value, reason, severity "
        "FROM quarantine.rejected_rows",
    )
    by_entity: dict[str, list[tuple]] = {}
    for row in rows:
        by_entity.setdefault(row[0], []).append(row[1:])
    food_bank = [p for p in org.rows("pmdm__Program__c") if p["Name"] not in MAPPED_PROGRAMMES]
    assert [r[1] for r in by_entity["programme"]] == [p["Id"] for p in food_bank]
    assert (
        "add it under mappings.programmes in members/acme_trust.yaml"
        in (by_entity["programme"][0][4])
    )
    engagement_ids = sorted(
        e["Id"] for e in org.rows("pmdm__ProgramEngagement__c") if e["Id"] not in org.engagements()
    )
    assert sorted({r[1] for r in by_entity["engagement"]}) == engagement_ids
    stage = [r for r in by_entity["engagement"] if r[2] == "pmdm__Stage__c"]
    assert stage == [
        (
            "pmdm__ProgramEngagement__c",
            stage[0][1],
            "pmdm__Stage__c",
            "On hold",
            "engagement stage 'On hold' has no mapping; add it under "
            "mappings.engagement_status in members/acme_trust.yaml",
            "error",
        )
    ]
    assert any(r[2] == "pmdm__StartDate__c" for r in by_entity["engagement"])
    counted, absent = org.deliveries()
    skipped = {r[1] for r in by_entity["service_delivery"] if r[5] == "skipped"}
    assert skipped == absent
    left_out = {d["Id"] for d in org.rows("pmdm__ServiceDelivery__c")} - set(counted)
    assert {r[1] for r in by_entity["service_delivery"]} == left_out
    labels = [r for r in by_entity["outcome"] if r[2] == "Outcome__c"]
    assert [r[3] for r in labels] == ["Confidence up"]
    assert {r[1] for r in by_entity["outcome"]} == (
        {o["Id"] for o in org.rows("Outcome__c")} - set(org.outcomes())
    )
    phone = by_entity["person"]
    assert [(r[1], r[2], r[3], r[5]) for r in phone] == [(contacts[1], "Phone", "12", "warning")]


def test_deleted_contact_leaves_the_people(loaded) -> None:
    _org, _member, warehouse, _build, contacts = loaded
    link_people(warehouse)
    linked = {r[0] for r in _fetch(warehouse, "SELECT source_id FROM hub.person_link")}
    assert contacts[0] not in linked and contacts[1] in linked


def test_postgresql_builds_the_same_rows(loaded, postgres_dsn: str) -> None:
    _org, member, duck, _build, _contacts = loaded
    pg = PostgresWarehouse(postgres_dsn)
    copy_raw_dataset(duck.path, f"raw_{ORG}", pg)
    build_member(pg, member)
    assert canonical_rows(pg) == canonical_rows(duck)


def test_a_field_hidden_from_the_integration_user_is_named(tmp_path: Path) -> None:
    (tmp_path / "members").mkdir()
    with SalesforceSandbox(sizes=SandboxSizes(contacts=5, engagements=5, deliveries=5)) as sf:
        sf.remove_field("pmdm__ProgramEngagement__c", "pmdm__Stage__c")
        _member_yaml(tmp_path / "members" / f"{ORG}.yaml", sf)
        member = load_member(tmp_path / "members" / f"{ORG}.yaml")
        warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
        pipeline = raw_pipeline(ORG, warehouse.dlt_destination(), tmp_path / "dlt")
        _info, report = load_npsp(
            pipeline, member.connector.settings(), member.connector.credentials()
        )
        report.close()
    assert any("pmdm__Stage__c" in p for p in report.problems)
    with pytest.raises(
        TransformError, match=r"pmdm__stage__c of raw_acme_trust\.pmdm__program_engagement"
    ):
        build_member(warehouse, member)


def _text_cells_containing(path: Path, needle: str) -> list[str]:
    """Every text column of every table in the DuckDB file holding ``needle`` anywhere."""
    import duckdb

    found = []
    with duckdb.connect(str(path), read_only=True) as con:
        columns = con.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE data_type = 'VARCHAR'"
        ).fetchall()
        for schema, table, column in columns:
            hits = con.execute(
                f'SELECT COUNT(*) FROM "{schema}"."{table}" WHERE "{column}" LIKE ?',
                [f"%{needle}%"],
            ).fetchone()[0]
            if hits:
                found.append(f"{schema}.{table}.{column}")
    return found


def test_an_unreadable_value_is_quarantined_masked_and_the_record_loads(tmp_path: Path) -> None:
    """A Birthdate of '31/02/garbage' once failed the member's whole load (issue #18). The
    contact now loads without it, quarantine names the record and field with the value
    masked, the raw value is nowhere in the hub, and correcting it clears the warning.
    A non-personal value (a delivery's quantity) is shown as it was."""
    (tmp_path / "members").mkdir()
    with SalesforceSandbox(sizes=SandboxSizes(contacts=6, engagements=6, deliveries=6)) as sf:
        _member_yaml(tmp_path / "members" / f"{ORG}.yaml", sf)
        member = load_member(tmp_path / "members" / f"{ORG}.yaml")
        contact = sf.ids("Contact")[2]
        delivery = sf.ids("pmdm__ServiceDelivery__c")[0]
        at = datetime.now(UTC) - timedelta(minutes=1)
        sf.update_records("Contact", [contact], {"Birthdate": "31/02/garbage"}, at)
        sf.update_records("pmdm__ServiceDelivery__c", [delivery], {"pmdm__Quantity__c": "two"}, at)
        warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
        pipeline = raw_pipeline(ORG, warehouse.dlt_destination(), tmp_path / "dlt")
        settings, credentials = member.connector.settings(), member.connector.credentials()
        _info, report = load_npsp(pipeline, settings, credentials, member=ORG)
        report.close()
        build = build_member(warehouse, member)
        person = _fetch(
            warehouse,
            f"SELECT given_name, birth_date FROM canonical.person WHERE source_id = '{contact}'",
        )
        assert person == [(sf.state.records["Contact"][contact]["FirstName"], None)]
        people = _fetch(warehouse, "SELECT COUNT(*) FROM canonical.person")[0][0]
        assert people == len(sf.ids("Contact"))  # the member's other records load too
        rows = _fetch(
            warehouse,
            "SELECT entity, source_file, source_id, column_name, raw_value, reason, severity, "
            "stage FROM quarantine.rejected_rows WHERE stage = 'load' ORDER BY entity",
        )
        assert [r[:5] + r[6:] for r in rows] == [
            ("person", "Contact", contact, "Birthdate", "99/99/xxxxxxx", "warning", "load"),
            (
                "service_delivery",
                "pmdm__ServiceDelivery__c",
                delivery,
                "pmdm__Quantity__c",
                "two",
                "warning",
                "load",
            ),
        ]
        assert "could not be read as a date" in rows[0][5] and "masked" in rows[0][5]
        assert "masked" not in rows[1][5]
        assert build.quarantined.get("warning", 0) >= 2
        warehouse_file = tmp_path / "warehouse.duckdb"
        for needle in ("garbage", "31/02/"):
            assert _text_cells_containing(warehouse_file, needle) == [], needle
            assert needle not in " ".join(report.messages())
            for file in [
                warehouse_file,
                *(p for p in (tmp_path / "dlt").rglob("*") if p.is_file()),
            ]:
                assert needle.encode() not in file.read_bytes(), file

        # The member corrects the record: the next load clears its warning.
        sf.update_records("Contact", [contact], {"Birthdate": "1990-02-28"}, at)
        _info, report = load_npsp(pipeline, settings, credentials, full_refresh=True)
        report.close()
    build_member(warehouse, member)
    left = _fetch(warehouse, "SELECT source_id FROM quarantine.rejected_rows WHERE stage = 'load'")
    assert left == [(delivery,)]
    born = _fetch(
        warehouse, f"SELECT birth_date FROM canonical.person WHERE source_id = '{contact}'"
    )
    assert born == [(date(1990, 2, 28),)]


def test_unreadable_values_are_quarantined_alike_on_postgresql(
    tmp_path: Path, postgres_dsn: str
) -> None:
    (tmp_path / "members").mkdir()
    with SalesforceSandbox(sizes=SandboxSizes(contacts=4, engagements=4, deliveries=4)) as sf:
        _member_yaml(tmp_path / "members" / f"{ORG}.yaml", sf)
        member = load_member(tmp_path / "members" / f"{ORG}.yaml")
        at = datetime.now(UTC) - timedelta(minutes=1)
        sf.update_records("Contact", sf.ids("Contact")[:1], {"Birthdate": "31/02/garbage"}, at)
        duck = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
        pipeline = raw_pipeline(ORG, duck.dlt_destination(), tmp_path / "dlt")
        _info, report = load_npsp(
            pipeline, member.connector.settings(), member.connector.credentials()
        )
        report.close()
    build_member(duck, member)
    pg = PostgresWarehouse(postgres_dsn)
    copy_raw_dataset(duck.path, f"raw_{ORG}", pg)
    build_member(pg, member)
    assert canonical_rows(pg) == canonical_rows(duck)
    assert ("person", "Birthdate", "99/99/xxxxxxx") in {
        (r[0], r[2], r[3]) for r in canonical_rows(pg)["quarantine.rejected_rows"]
    }
