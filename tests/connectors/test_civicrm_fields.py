"""Fields the CiviCRM API user cannot see (issue #19 item 2), against the loopback sandbox.

APIv4 leaves such a field out of ``getFields`` and drops it from ``select`` without an
error; a load that took the answer would blank consent and outcome statuses. It must fail
before anything is written, name the field and the permission, and after the fix load
everything exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import dlt
import duckdb
import pytest
import yaml
from dlt.pipeline.exceptions import PipelineStepFailed

from connectors.civicrm import CiviCRMSettings, civicrm_source, raw_pipeline, resource_names
from connectors.civicrm.fields import HiddenFieldsError
from connectors.members import Member, load_member
from pipelines.lib.errors import as_failure
from sandboxes.civicrm import CiviCRMSandbox
from transforms.canonical import build_member
from transforms.warehouse import DuckDBWarehouse

ORG = "civi_fields"
RAW = f"raw_{ORG}"


@pytest.fixture
def civi() -> Iterator[CiviCRMSandbox]:
    with CiviCRMSandbox(contacts=12, activities_per_contact=3, seed=5) as sandbox:
        yield sandbox


def _settings(civi: CiviCRMSandbox, **overrides: Any) -> CiviCRMSettings:
    values: dict[str, Any] = {
        "site_url": civi.url,
        "page_size": 50,
        "lookback_seconds": 0,
        "backoff_seconds": 0,
        "max_retries": 1,
    }
    values.update(overrides)
    return CiviCRMSettings.model_validate(values)


def _pipeline(tmp_path: Path) -> dlt.Pipeline:
    return raw_pipeline(
        ORG, dlt.destinations.duckdb(str(tmp_path / "warehouse.duckdb")), tmp_path / "pipelines"
    )


def _run(civi: CiviCRMSandbox, tmp_path: Path, **overrides: Any) -> None:
    _pipeline(tmp_path).run(civicrm_source(_settings(civi, **overrides), civi.api_key))


def _failure(civi: CiviCRMSandbox, tmp_path: Path, **overrides: Any) -> HiddenFieldsError:
    with pytest.raises(PipelineStepFailed) as err:
        _run(civi, tmp_path, **overrides)
    chain: list[BaseException] = []
    exc: BaseException | None = err.value
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    found = [e for e in chain if isinstance(e, HiddenFieldsError)]
    assert found, chain
    # What the member's load fails with in Dagster: this message, never retried.
    failure = as_failure(err.value)
    assert isinstance(failure, dg.Failure) and failure.description == str(found[0])
    assert not failure.allow_retries
    return found[0]


def _query(tmp_path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def _snapshot(
    civi: CiviCRMSandbox, tmp_path: Path, **overrides: Any
) -> tuple[dict[str, list[tuple]], Any]:
    """Every raw table row by row (load ids included), and the committed resource states."""
    tables = {
        t: _query(tmp_path, f"SELECT * FROM {RAW}.{t} ORDER BY id")
        for t in resource_names(_settings(civi, **overrides))
    }
    return tables, _pipeline(tmp_path).state["sources"]["civicrm"]["resources"]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _exact(civi: CiviCRMSandbox, tmp_path: Path) -> None:
    """Raw consent, birth date and outcome status equal CiviCRM's, record by record."""
    people = f"SELECT id, consent_to_share, birth_date::TEXT FROM {RAW}.civicrm__contact"
    assert sorted(_query(tmp_path, people)) == [
        (cid, _text(r["Consent.share_data"]), r["birth_date"])
        for cid, r in sorted(civi.data.tables["Contact"].items())
    ]
    names = {k: v[0] for k, v in civi.options["outcome_status"].items()}
    loaded = sorted(_query(tmp_path, f"SELECT id, outcome_status FROM {RAW}.civicrm__activity"))
    assert loaded == [
        (aid, names.get(r["Outcomes.status"]))
        for aid, r in sorted(civi.data.tables["Activity"].items())
    ]


def _edit_what_the_fields_hold(civi: CiviCRMSandbox) -> None:
    """Changes a load would have taken blank: consent withdrawn and given, outcome statuses
    moved on, birth dates corrected."""
    contacts = sorted(civi.data.tables["Contact"])
    for cid in contacts[:4]:
        row = civi.data.tables["Contact"][cid]
        civi.edit(
            "Contact",
            cid,
            **{"Consent.share_data": not row["Consent.share_data"], "birth_date": "1980-02-29"},
        )
    reviews = [a for a, r in civi.data.tables["Activity"].items() if r["Outcomes.status"]]
    for aid in reviews[:3]:
        civi.edit("Activity", aid, **{"Outcomes.status": 1})


def _hide_all_three_kinds(civi: CiviCRMSandbox) -> None:
    """The consent field hidden on Contact; the Outcomes group hidden by revoking 'access all
    custom data' (an ACL still grants View on Consent); a core field hidden by its permission."""
    civi.hide_fields("Contact", ["Consent.share_data", "birth_date"])
    civi.acl_custom_groups.add("Consent")
    civi.revoke_permission("access all custom data")


def _member(civi: CiviCRMSandbox, tmp_path: Path) -> Member:
    """A member whose outcome options and statuses are all mapped: any quarantined outcome
    is one the load got wrong."""
    path = tmp_path / "members" / f"{ORG}.yaml"
    path.parent.mkdir()
    outcomes = {v[0]: v[0] for v in civi.options["outcome"].values()}
    statuses = {v[0]: v[0] for v in civi.options["outcome_status"].values()}
    config = {
        "name": "Civi Fields",
        "connector": {
            "kind": "civicrm",
            "site_url": civi.url,
            "api_key": {"env": "HUB_CIVI_FIELDS_KEY"},
        },
        "mappings": {
            "programmes": {v[0]: "housing" for v in civi.options["case_type"].values()},
            "outcomes": outcomes,
            "outcome_status": statuses,
        },
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return load_member(path)


def _canonical(warehouse: DuckDBWarehouse, member: Member) -> tuple[list[tuple], list[tuple]]:
    """Canonical consent by person, and what quarantine says of outcomes."""
    build_member(warehouse, member)
    with warehouse.connect() as session:
        consent = session.fetchall(
            "SELECT source_id, consent_to_share FROM canonical.person WHERE org_id = ? "
            "ORDER BY source_id",
            [ORG],
        )
        outcomes = session.fetchall(
            "SELECT column_name, reason FROM quarantine.rejected_rows WHERE org_id = ? "
            "AND entity = 'outcome'",
            [ORG],
        )
    return consent, outcomes


def test_hidden_fields_fail_the_load_before_anything_is_written_and_come_back_exactly(
    civi: CiviCRMSandbox, tmp_path: Path
) -> None:
    """Consent (custom, Contact), outcome status (custom, Activity) and a core field: the
    load names each with the permission to grant and writes nothing; after the fix the next
    run takes every change made meanwhile, and no person lost consent, no outcome is
    quarantined."""
    member = _member(civi, tmp_path)
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    _run(civi, tmp_path)
    _exact(civi, tmp_path)
    consent, quarantined = _canonical(warehouse, member)
    assert quarantined == [] and any(c for _, c in consent) and not all(c for _, c in consent)
    before = _snapshot(civi, tmp_path)
    _edit_what_the_fields_hold(civi)

    _hide_all_three_kinds(civi)
    asked = len(civi.requests)
    err = _failure(civi, tmp_path)
    message = str(err)
    for text in [
        "Contact field 'Consent.share_data' (grant 'access all custom data' to the CiviCRM "
        "user's role, or a CiviCRM ACL granting it View on custom group 'Consent')",
        "Contact field 'birth_date' (grant the permission CiviCRM requires for this field",
        "Activity fields 'Outcomes.outcome', 'Outcomes.status', 'Outcomes.value' (grant "
        "'access all custom data' to the CiviCRM user's role, or a CiviCRM ACL granting it "
        "View on custom group 'Outcomes')",
        "Fix: grant the CiviCRM user's role",
        "nothing of this load was written",
    ]:
        assert text in message, message
    assert len(err.hidden) == 5
    # Names, never values: no consent, status, date or person's name in the error.
    assert "1980-02-29" not in message and "achieved" not in message
    assert not any(r["last_name"] in message for r in civi.data.tables["Contact"].values())
    # Nothing read (the field check comes first), nothing written, no cursor moved.
    assert [r for r in civi.requests[asked:] if r[1] == "get"] == []
    assert _snapshot(civi, tmp_path) == before

    # Fixed: the next run loads every change exactly; nobody lost consent, no status blank.
    civi.show_fields()
    civi.grant_permission("access all custom data")
    _run(civi, tmp_path)
    _exact(civi, tmp_path)
    consent, quarantined = _canonical(warehouse, member)
    assert quarantined == []
    contacts = civi.data.tables["Contact"]
    assert consent == sorted((str(i), bool(r["Consent.share_data"])) for i, r in contacts.items())


def test_a_field_hidden_mid_run_fails_the_load_and_the_next_run_reads_it_again(
    civi: CiviCRMSandbox, tmp_path: Path
) -> None:
    """The permission goes after an activity page came back with the status: the page that
    lacks it fails the load, and what the earlier pages brought is not taken either."""
    tables = {"entities": ["contact", "activity"]}
    _run(civi, tmp_path, **tables)
    before = _snapshot(civi, tmp_path, **tables)
    _edit_what_the_fields_hold(civi)
    changed = sorted(civi.data.tables["Activity"])[::4]
    for aid in changed:
        civi.edit("Activity", aid, duration=99)  # many activities changed: several pages
    answered = len(civi.answers)

    def status_read(sandbox: CiviCRMSandbox) -> bool:
        return any(
            a[:2] == ("Activity", "get") and "Outcomes.status:name" in a[2] and a[3]
            for a in sandbox.answers[answered:]
        )

    def hide_after_a_page_with_it(sandbox: CiviCRMSandbox) -> None:
        if status_read(sandbox):
            sandbox.hide_fields("Activity", ["Outcomes.status"])
        else:
            sandbox.after_requests(1, hide_after_a_page_with_it)

    civi.after_requests(1, hide_after_a_page_with_it)
    err = _failure(civi, tmp_path, page_size=2, **tables)
    assert "Activity field 'Outcomes.status'" in str(err) and "missing from a page" in str(err)
    assert status_read(civi)  # a page with the field was read before the one without it
    assert _snapshot(civi, tmp_path, **tables) == before

    civi.show_fields()
    _run(civi, tmp_path, **tables)
    _exact(civi, tmp_path)
    duration = f"SELECT id FROM {RAW}.civicrm__activity WHERE duration = 99 ORDER BY id"
    assert [r[0] for r in _query(tmp_path, duration)] == changed


def test_a_field_newly_read_is_read_for_every_record(
    civi: CiviCRMSandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A record keeps what it was read with until it changes in CiviCRM: a field the config
    starts to read (or one an older hub version loaded blank) is read for every record once,
    not only for those edited since."""
    tables: dict[str, Any] = {"entities": ["contact", "activity"]}
    no_value = {"outcome": "Outcomes.outcome:name", "status": "Outcomes.status:name"}
    _run(civi, tmp_path, outcome_fields={**no_value, "value": None}, **tables)
    with caplog.at_level("INFO", logger="connectors.civicrm.source"):
        _run(civi, tmp_path, **tables)  # the default outcome_fields read Outcomes.value too
    value = f"SELECT id, outcome_value FROM {RAW}.civicrm__activity ORDER BY id"
    assert _query(tmp_path, value) == [
        (aid, _text(r["Outcomes.value"])) for aid, r in sorted(civi.data.tables["Activity"].items())
    ]
    assert any("Outcomes.value" in r.getMessage() for r in caplog.records)
    # Contacts were read with the same fields: they stay incremental (nothing re-read).
    assert not any("Contact" in r.getMessage() for r in caplog.records if "fields" in r.msg)


def test_a_parent_field_hidden_mid_run_never_lets_a_trashed_persons_email_load(
    civi: CiviCRMSandbox, tmp_path: Path
) -> None:
    """E-mails are read with their contact's is_deleted (an implicit join), which says
    whether they may keep their personal fields (issue #18): a page without it fails."""
    trashed = min(civi.data.tables["Contact"])
    civi.trash_contact(trashed)
    civi.after_requests(2, lambda s: s.hide_fields("Contact", ["is_deleted"]))  # after the check
    source = civicrm_source(_settings(civi, entities=["contact", "email"]), civi.api_key)
    with pytest.raises(PipelineStepFailed) as err:
        _pipeline(tmp_path).run(source.with_resources("civicrm__email"))
    assert "Contact field 'is_deleted'" in str(as_failure(err.value))
    asked = [r for r in civi.requests if r[0] == "Email" and r[1] == "get"]
    assert asked and all("contact_id.is_deleted" in r[2]["select"] for r in asked)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:  # nothing was written
        tables = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'civicrm__email'"
        ).fetchone()
    assert tables == (0,)
