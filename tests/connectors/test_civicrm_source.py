"""The CiviCRM dlt source end to end: loopback sandbox -> real HTTP -> dlt -> a DuckDB file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from connectors.civicrm import CiviCRMSettings, civicrm_source, raw_pipeline, resource_names
from connectors.civicrm.client import CiviCRMError, CiviCRMTransientError
from connectors.civicrm.source import IdRanges
from connectors.errors import TransientSourceError
from connectors.holds import member_holds
from sandboxes.civicrm import CiviCRMSandbox

ORG = "civi_trust"
TS = "%Y-%m-%d %H:%M:%S"
RAW = f"raw_{ORG}"


@pytest.fixture
def civi() -> Iterator[CiviCRMSandbox]:
    with CiviCRMSandbox(contacts=20, activities_per_contact=3, seed=11) as sandbox:
        yield sandbox


def _settings(civi: CiviCRMSandbox, **overrides: Any) -> CiviCRMSettings:
    values: dict[str, Any] = {
        "site_url": civi.url,
        "page_size": 4,
        "lookback_seconds": 0,
        "backoff_seconds": 0,
        "max_retries": 2,
        "reconcile_every_runs": 1000,
    }
    values.update(overrides)
    return CiviCRMSettings.model_validate(values)


def _pipeline(tmp_path: Path) -> dlt.Pipeline:
    return raw_pipeline(
        ORG, dlt.destinations.duckdb(str(tmp_path / "warehouse.duckdb")), tmp_path / "pipelines"
    )


def _run(
    civi: CiviCRMSandbox,
    tmp_path: Path,
    *resources: str,
    reconcile: bool | None = None,
    **overrides: Any,
) -> str:
    """One run; returns its load id."""
    source = civicrm_source(_settings(civi, **overrides), civi.api_key, reconcile=reconcile)
    if resources:
        source = source.with_resources(*resources)
    info = _pipeline(tmp_path).run(source)
    return info.loads_ids[0]


def _query(tmp_path: Path, sql: str, *args: Any) -> list[tuple]:
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql, list(args)).fetchall()
    finally:
        con.close()


def _ids(tmp_path: Path, table: str, where: str = "TRUE", *args: Any) -> list[int]:
    rows = _query(
        tmp_path, f"SELECT id FROM {RAW}.civicrm__{table} WHERE {where} ORDER BY id", *args
    )
    return [r[0] for r in rows]


def _live(civi: CiviCRMSandbox, entity: str) -> list[int]:
    return sorted(civi.data.tables[entity])


def _extracted_rows(tmp_path: Path, table: str) -> int:
    """Rows the last run yielded for a table (before merge could hide duplicates)."""
    trace = _pipeline(tmp_path).last_trace
    return int(trace.last_normalize_info.row_counts.get(f"civicrm__{table}", 0))


def test_full_load_tables_columns_and_values(civi: CiviCRMSandbox, tmp_path: Path) -> None:
    _run(civi, tmp_path)
    for table, entity in [
        ("contact", "Contact"),
        ("email", "Email"),
        ("phone", "Phone"),
        ("address", "Address"),
        ("case", "Case"),
        ("case_contact", "CaseContact"),
        ("activity", "Activity"),
        ("activity_contact", "ActivityContact"),
        ("contribution", "Contribution"),
    ]:
        assert _ids(tmp_path, table) == _live(civi, entity), table
        assert _extracted_rows(tmp_path, table) == len(civi.data.tables[entity]), table
    columns = _query(
        tmp_path,
        "SELECT table_name, list(column_name ORDER BY ordinal_position) "
        "FROM information_schema.columns WHERE table_schema = ? AND table_name LIKE 'civicrm__%' "
        "GROUP BY table_name",
        RAW,
    )
    names = dict(columns)
    assert sorted(names) == sorted(resource_names(_settings(civi)))
    assert names["civicrm__contact"] == [
        "id",
        "contact_type",
        "first_name",
        "last_name",
        "birth_date",
        "is_deleted",
        "modified_date",
        "consent_to_share",
        "deleted_in_source",
        "_dlt_load_id",
    ]
    assert names["civicrm__activity"][:11] == [
        "id",
        "activity_type",
        "activity_date_time",
        "status",
        "duration",
        "case_id",
        "is_deleted",
        "modified_date",
        "outcome",
        "outcome_status",
        "outcome_value",
    ]
    row = _query(
        tmp_path,
        f"SELECT first_name, birth_date::TEXT, modified_date::TEXT, consent_to_share "
        f"FROM {RAW}.civicrm__contact WHERE id = 1",
    )[0]
    source = civi.data.tables["Contact"][1]
    assert row == (
        source["first_name"],
        source["birth_date"],
        source["modified_date"],
        "true" if source["Consent.share_data"] else "false",
    )
    reviews = _query(
        tmp_path,
        f"SELECT DISTINCT activity_type, outcome_status FROM {RAW}.civicrm__activity "
        "WHERE outcome IS NOT NULL",
    )
    assert reviews and {r[0] for r in reviews} == {"Outcome Review"}
    assert {r[1] for r in reviews} <= {"achieved", "progressing", "not_achieved"}
    types = dict(
        _query(
            tmp_path,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = 'civicrm__contact'",
            RAW,
        )
    )
    assert types["id"] == "BIGINT" and types["modified_date"] == "TIMESTAMP"
    assert types["birth_date"] == "DATE" and types["is_deleted"] == "BOOLEAN"


def test_incremental_picks_up_exactly_edits_trash_and_hard_deletes(
    civi: CiviCRMSandbox, tmp_path: Path
) -> None:
    _run(civi, tmp_path)
    cursor = max(r["modified_date"] for r in civi.data.tables["Contact"].values())
    at_cursor = {i for i, r in civi.data.tables["Contact"].items() if r["modified_date"] == cursor}

    civi.edit("Contact", 3, first_name="Renamed")
    email_of_5 = next(i for i, r in civi.data.tables["Email"].items() if r["contact_id"] == 5)
    civi.edit("Email", email_of_5, email="new5@example.org")  # bumps contact 5
    civi.trash_contact(7)
    civi.hard_delete("Contact", 9)  # also removes its email, address, activity links ...
    new_contact = civi.add_contact()
    civi.edit("Activity", 2, duration=99)
    deleted_activity = 10
    civi.hard_delete("Activity", deleted_activity)

    load = _run(civi, tmp_path, reconcile=True)

    assert set(_ids(tmp_path, "contact", "_dlt_load_id = ?", load)) - at_cursor == {
        3,
        5,
        7,
        9,
        new_contact,
    }
    contacts = {
        r[0]: r[1:]
        for r in _query(
            tmp_path,
            f"SELECT id, first_name, is_deleted, deleted_in_source FROM {RAW}.civicrm__contact",
        )
    }
    assert contacts[3][0] == "Renamed" and contacts[3][1:] == (False, False)
    assert contacts[7][1:] == (True, False)  # trashed: still readable, flagged
    assert contacts[9] == (None, True, True)  # hard-deleted: marker only
    assert contacts[new_contact][1:] == (False, False)
    emails = dict(_query(tmp_path, f"SELECT id, email FROM {RAW}.civicrm__email"))
    assert emails[email_of_5] == "new5@example.org"
    assert set(_ids(tmp_path, "email", "NOT deleted_in_source")) == set(_live(civi, "Email"))
    assert set(_ids(tmp_path, "activity_contact", "NOT deleted_in_source")) == set(
        _live(civi, "ActivityContact")
    )
    activities = dict(_query(tmp_path, f"SELECT id, duration FROM {RAW}.civicrm__activity"))
    assert activities[2] == 99 and activities[deleted_activity] is None
    assert _ids(tmp_path, "activity", "deleted_in_source") == [deleted_activity]
    # Only changed rows were re-read (plus the ones sitting exactly on the cursor).
    activity_load = set(_ids(tmp_path, "activity", "_dlt_load_id = ?", load))
    assert 2 in activity_load and len(activity_load) <= 3

    # A third run with nothing changed reads next to nothing and changes no row.
    load3 = _run(civi, tmp_path, reconcile=False)
    assert set(_ids(tmp_path, "contact", "_dlt_load_id = ?", load3)) <= {new_contact}


def test_other_tables_hard_deletes_wait_for_the_periodic_check(
    civi: CiviCRMSandbox, tmp_path: Path
) -> None:
    """Contacts are checked on every run; an activity deleted for good waits for the full
    id comparison every ``reconcile_every_runs`` runs (it bumps nothing)."""
    resources = ("civicrm__contact", "civicrm__activity")
    _run(civi, tmp_path, *resources, reconcile_every_runs=3)
    civi.hard_delete("Contact", 4)
    civi.hard_delete("Activity", 8)
    _run(civi, tmp_path, *resources, reconcile_every_runs=3)
    assert _ids(tmp_path, "contact", "deleted_in_source") == [4]
    assert _ids(tmp_path, "activity", "deleted_in_source") == []
    _run(civi, tmp_path, *resources, reconcile_every_runs=3)  # run 3: due
    assert _ids(tmp_path, "activity", "deleted_in_source") == [8]


DEFAULTS = {"reconcile_every_runs": CiviCRMSettings.model_fields["reconcile_every_runs"].default}
PERSON_TABLES = {"email": "email", "phone": "phone", "address": "postal_code"}


def _contact_calls(civi: CiviCRMSandbox, since: int) -> list[list[str]]:
    """The ``select`` of each Contact.get the sandbox answered after request ``since``."""
    return [p.get("select", []) for e, a, p in civi.requests[since:] if e == "Contact"]


def _personal_rows(tmp_path: Path, contact_id: int) -> dict[str, list[tuple]]:
    """Rows of the contact's e-mail, phone and address tables that still hold a value."""
    return {
        table: _query(
            tmp_path,
            f"SELECT id, {column} FROM {RAW}.civicrm__{table} "
            f"WHERE contact_id = ? AND {column} IS NOT NULL",
            contact_id,
        )
        for table, column in PERSON_TABLES.items()
    }


def test_a_contact_deleted_for_good_leaves_raw_on_the_very_next_run(
    civi: CiviCRMSandbox, tmp_path: Path
) -> None:
    _run(civi, tmp_path, **DEFAULTS)
    phones = {r["contact_id"] for r in civi.data.tables["Phone"].values()}
    gone = sorted(phones)[2]  # has an e-mail, a phone and an address
    assert all(_personal_rows(tmp_path, gone).values())
    children = {
        table: sorted(
            i for i, r in civi.data.tables[table.title()].items() if r["contact_id"] == gone
        )
        for table in PERSON_TABLES
    }
    civi.hard_delete("Contact", gone)
    since = len(civi.requests)

    _run(civi, tmp_path, **DEFAULTS)

    row = _query(
        tmp_path,
        f"SELECT first_name, last_name, birth_date, consent_to_share, is_deleted, "
        f"deleted_in_source FROM {RAW}.civicrm__contact WHERE id = ?",
        gone,
    )
    assert row == [(None, None, None, None, True, True)]
    assert _personal_rows(tmp_path, gone) == {t: [] for t in PERSON_TABLES}
    for table, ids in children.items():
        assert ids and not set(ids) & set(_ids(tmp_path, table)), table  # the rows left
        assert _ids(tmp_path, table, "contact_id = ?", gone) == [-gone]  # one tombstone
    assert set(_ids(tmp_path, "contact", "NOT is_deleted")) == set(_live(civi, "Contact"))
    # One count and one id listing served the contact table and its three child tables.
    calls = _contact_calls(civi, since)
    assert calls.count(["row_count"]) == 1 and calls.count(["id"]) == 1

    # A run with nothing deleted costs one count, and no listing.
    since = len(civi.requests)
    _run(civi, tmp_path, **DEFAULTS)
    calls = _contact_calls(civi, since)
    assert calls.count(["row_count"]) == 1 and ["id"] not in calls


def test_a_delete_and_a_create_in_one_interval_are_both_seen(
    civi: CiviCRMSandbox, tmp_path: Path
) -> None:
    """The count stays the same, but the new contact was read in the run, so the ids held
    outnumber CiviCRM's count and the listing finds the deleted one."""
    _run(civi, tmp_path, **DEFAULTS)
    count_before = len(civi.data.tables["Contact"])
    civi.hard_delete("Contact", 6)
    new = civi.add_contact()
    assert len(civi.data.tables["Contact"]) == count_before
    _run(civi, tmp_path, **DEFAULTS)
    assert _ids(tmp_path, "contact", "deleted_in_source") == [6]
    assert new in _ids(tmp_path, "contact", "NOT is_deleted")
    assert _personal_rows(tmp_path, 6) == {t: [] for t in PERSON_TABLES}


@pytest.mark.parametrize("first_load", [True, False])
def test_a_trashed_contacts_child_rows_keep_no_personal_value(
    civi: CiviCRMSandbox, tmp_path: Path, first_load: bool
) -> None:
    phones = {r["contact_id"] for r in civi.data.tables["Phone"].values()}
    trashed = sorted(phones)[1]
    if not first_load:
        _run(civi, tmp_path, **DEFAULTS)
        assert all(_personal_rows(tmp_path, trashed).values())
    civi.trash_contact(trashed)
    _run(civi, tmp_path, **DEFAULTS)
    assert _personal_rows(tmp_path, trashed) == {t: [] for t in PERSON_TABLES}
    for table in PERSON_TABLES:  # ids kept, so the rows still reach canonical as the contact's
        live = sorted(
            i for i, r in civi.data.tables[table.title()].items() if r["contact_id"] == trashed
        )
        assert live and _ids(tmp_path, table, "contact_id = ?", trashed) == live, table
    # Everyone else keeps their values.
    others = _query(tmp_path, f"SELECT count(*) FROM {RAW}.civicrm__email WHERE email IS NOT NULL")
    assert others == [(len(civi.data.tables["Email"]) - 1,)]
    # Restored from the trash: the values come back with the next run.
    civi.edit("Contact", trashed, is_deleted=False)
    _run(civi, tmp_path, **DEFAULTS)
    assert all(_personal_rows(tmp_path, trashed).values())


def test_a_permission_glitch_deletes_nobody(
    civi: CiviCRMSandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """CiviCRM answers a lost permission or ACL with an empty or short list (and count 0)."""
    _run(civi, tmp_path, **DEFAULTS)
    emails = _query(tmp_path, f"SELECT id, email FROM {RAW}.civicrm__email ORDER BY id")

    def unharmed() -> None:
        assert _ids(tmp_path, "contact", "deleted_in_source") == []
        assert _ids(tmp_path, "contact", "first_name IS NOT NULL") == _live(civi, "Contact")
        assert _query(tmp_path, f"SELECT id, email FROM {RAW}.civicrm__email ORDER BY id") == emails

    civi.hide("Contact")  # every contact: count 0, empty listing
    with caplog.at_level("WARNING", logger="connectors.civicrm.source"):
        _run(civi, tmp_path, **DEFAULTS)
    unharmed()
    warnings = [r.getMessage() for r in caplog.records if "no longer listed" in r.getMessage()]
    assert warnings and all("20 of 20" in w and "max_deleted_share" in w for w in warnings)
    names = {r["last_name"] for r in civi.data.tables["Contact"].values()}
    assert not any(name in w for w in warnings for name in names)  # counts only
    state = _pipeline(tmp_path).state["sources"]["civicrm"]["resources"]
    assert state["civicrm__contact"]["held_deletions"] == 20
    assert state["civicrm__email"]["held_parent_deletions"] == 20
    # The holds the load asset, `hub check` and the run summary read back (from the state
    # file dlt committed): the member is held back with the fix.
    held = {h.table: h for h in member_holds(tmp_path / "pipelines", ORG, ["civicrm"])}
    assert "20 of 20 loaded records" in held["civicrm__contact"].reason
    assert "rows of contacts" in held["civicrm__email"].reason
    assert held["civicrm__contact"].since and "max_deleted_share" in held["civicrm__contact"].fix

    civi.hide("Contact", range(1, 16))  # 15 of 20: far over max_deleted_share
    # Edited while hidden, and a visible edit moves the cursor past it: still read later.
    civi.edit("Contact", 3, last_name="Hiddenedit")
    civi.edit("Contact", 18, last_name="Visibleedit")
    _run(civi, tmp_path, **DEFAULTS)
    _run(civi, tmp_path, **DEFAULTS)  # a second held run keeps reading from the hold's start
    emails = _query(tmp_path, f"SELECT id, email FROM {RAW}.civicrm__email ORDER BY id")
    unharmed_names = _query(tmp_path, f"SELECT last_name FROM {RAW}.civicrm__contact WHERE id = 3")
    assert unharmed_names != [("Hiddenedit",)]  # CiviCRM hid it: not read yet

    civi.unhide("Contact")  # fixed: nothing was lost, the hidden edit comes in, hold lifts
    _run(civi, tmp_path, **DEFAULTS)
    unharmed()
    edited = f"SELECT id, last_name FROM {RAW}.civicrm__contact WHERE id IN (3, 18) ORDER BY id"
    assert _query(tmp_path, edited) == [(3, "Hiddenedit"), (18, "Visibleedit")]
    state = _pipeline(tmp_path).state["sources"]["civicrm"]["resources"]
    assert "held_deletions" not in state["civicrm__contact"]
    assert "resync_from" not in state["civicrm__contact"]
    assert member_holds(tmp_path / "pipelines", ORG, ["civicrm"]) == []

    # A deliberate mass deletion goes through when a person raises the share for a run.
    for cid in range(1, 16):
        civi.hard_delete("Contact", cid)
    _run(civi, tmp_path, **DEFAULTS)
    assert _ids(tmp_path, "contact", "deleted_in_source") == []
    _run(civi, tmp_path, max_deleted_share=1, **DEFAULTS)
    assert _ids(tmp_path, "contact", "deleted_in_source") == list(range(1, 16))
    assert all(_personal_rows(tmp_path, cid) == {t: [] for t in PERSON_TABLES} for cid in (1, 15))


def test_shared_timestamps_across_pages_are_not_skipped(
    civi: CiviCRMSandbox, tmp_path: Path
) -> None:
    _run(civi, tmp_path, "civicrm__contact")
    ts = civi.now()
    civi.set_modified("Contact", [2, 6, 8, 11, 13, 15, 17], ts)  # 7 rows, pages of 2
    for cid in (2, 6, 8, 11, 13, 15, 17):
        civi.data.tables["Contact"][cid]["last_name"] = "Same-Second"
    cursor = max(
        r["modified_date"] for r in civi.data.tables["Contact"].values() if r["modified_date"] < ts
    )
    at_cursor = {i for i, r in civi.data.tables["Contact"].items() if r["modified_date"] == cursor}
    load = _run(civi, tmp_path, "civicrm__contact", page_size=2)
    assert _ids(tmp_path, "contact", "last_name = 'Same-Second'") == [2, 6, 8, 11, 13, 15, 17]
    assert set(_ids(tmp_path, "contact", "_dlt_load_id = ?", load)) - at_cursor == {
        2,
        6,
        8,
        11,
        13,
        15,
        17,
    }
    assert _extracted_rows(tmp_path, "contact") == 7 + len(at_cursor)  # each read once


def test_inserts_and_deletes_during_a_full_run_neither_lose_nor_duplicate(
    civi: CiviCRMSandbox, tmp_path: Path
) -> None:
    def mutate(sandbox: CiviCRMSandbox) -> None:
        sandbox.hard_delete("Contact", 2)  # already read: offset paging would now skip one
        for _ in range(3):
            sandbox.add_contact()

    civi.after_requests(3, mutate)  # between page 1 and page 2 (after the field check)
    _run(civi, tmp_path, "civicrm__contact")
    loaded = _ids(tmp_path, "contact")
    assert loaded == list(range(1, 24))  # 20 seeded (2 included: read before it went) + 3 new
    assert _extracted_rows(tmp_path, "contact") == 23  # each exactly once
    _run(civi, tmp_path, "civicrm__contact", reconcile=True)
    assert _ids(tmp_path, "contact", "deleted_in_source") == [2]


def test_edits_during_an_incremental_run_neither_lose_nor_skip(
    civi: CiviCRMSandbox, tmp_path: Path
) -> None:
    _run(civi, tmp_path, "civicrm__contact")
    changed = [1, 3, 5, 7, 9, 12]
    for cid in changed:
        civi.edit("Contact", cid, last_name="Changed")

    def mutate(sandbox: CiviCRMSandbox) -> None:
        sandbox.edit("Contact", 1, last_name="Changed-Again")  # already read: moves to the end
        sandbox.add_contact(last_name="Changed")

    civi.after_requests(3, mutate)  # the field check, page 1, then this
    _run(civi, tmp_path, "civicrm__contact", page_size=2)
    names = dict(_query(tmp_path, f"SELECT id, last_name FROM {RAW}.civicrm__contact"))
    assert names[1] == "Changed-Again"
    assert all(names[c] == "Changed" for c in changed[1:])
    assert names[21] == "Changed"


@pytest.mark.parametrize("status", [500, 503])
def test_transient_faults_are_retried_within_a_run(
    civi: CiviCRMSandbox, tmp_path: Path, status: int
) -> None:
    civi.after_requests(4, lambda s: s.fail_next(2, status))
    _run(civi, tmp_path)
    assert _ids(tmp_path, "activity") == _live(civi, "Activity")
    assert _ids(tmp_path, "contact") == _live(civi, "Contact")


def _root_causes(exc: BaseException) -> list[BaseException]:
    chain = []
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return chain


def test_a_failed_run_resumes_with_nothing_lost_or_duplicated(
    civi: CiviCRMSandbox, tmp_path: Path
) -> None:
    _run(civi, tmp_path)
    for aid in (1, 5, 9, 30, 44):
        civi.edit("Activity", aid, duration=77)
    civi.edit("Contact", 6, first_name="Edited")
    civi.after_requests(7, lambda s: s.fail_next(2, 503))  # exhausts max_retries=1 mid-run
    with pytest.raises(PipelineStepFailed) as err:
        _run(civi, tmp_path, max_retries=1)
    assert any(isinstance(e, TransientSourceError) for e in _root_causes(err.value))
    # Nothing of the failed run reached the warehouse, and its cursors were not saved.
    assert _ids(tmp_path, "activity", "duration = 77") == []
    _run(civi, tmp_path)
    assert _ids(tmp_path, "activity", "duration = 77") == [1, 5, 9, 30, 44]
    assert _query(tmp_path, f"SELECT first_name FROM {RAW}.civicrm__contact WHERE id = 6") == [
        ("Edited",)
    ]
    for table, entity in [("activity", "Activity"), ("contact", "Contact"), ("email", "Email")]:
        assert _ids(tmp_path, table) == _live(civi, entity)
        dupes = _query(
            tmp_path, f"SELECT id FROM {RAW}.civicrm__{table} GROUP BY id HAVING count(*) > 1"
        )
        assert dupes == []


def test_without_the_deleted_contacts_permission_trashed_contacts_leave_as_deletions(
    civi: CiviCRMSandbox, tmp_path: Path
) -> None:
    """CiviCRM hides trashed contacts from a user without 'access deleted contacts' (an
    ACL filter, not an error): the load goes on, and a contact trashed meanwhile leaves the
    hub as a deletion, its personal fields gone all the same."""
    _run(civi, tmp_path, "civicrm__contact", **DEFAULTS)
    civi.revoke_permission("access deleted contacts")
    trashed = min(civi.data.tables["Contact"])
    civi.trash_contact(trashed)
    _run(civi, tmp_path, "civicrm__contact", **DEFAULTS)
    assert _ids(tmp_path, "contact", "deleted_in_source") == [trashed]
    assert _ids(tmp_path, "contact", "first_name IS NOT NULL") == [
        i for i in _live(civi, "Contact") if i != trashed
    ]


def test_wrong_custom_field_stops_with_the_fix(civi: CiviCRMSandbox, tmp_path: Path) -> None:
    with pytest.raises(PipelineStepFailed) as err:
        _run(civi, tmp_path, "civicrm__contact", consent_field="Consent.nope")
    permanent = [e for e in _root_causes(err.value) if isinstance(e, CiviCRMError)]
    # Real APIv4 drops an unknown selected field as silently as a hidden one: the field
    # check names it before anything is read.
    assert permanent and "Contact field 'Consent.nope'" in str(permanent[0])
    assert "correct connector.consent_field" in str(permanent[0])
    assert [r for r in civi.requests if r[1] == "get"] == []
    assert not [e for e in _root_causes(err.value) if isinstance(e, CiviCRMTransientError)]


def test_contribution_before_6_9_falls_back_to_full_reads(
    civi: CiviCRMSandbox, tmp_path: Path
) -> None:
    civi.set_version("6.8.2")
    _run(civi, tmp_path, "civicrm__contribution")
    assert _ids(tmp_path, "contribution") == _live(civi, "Contribution")
    assert _query(
        tmp_path, f"SELECT count(*) FROM {RAW}.civicrm__contribution WHERE modified_date IS NULL"
    ) == [(len(civi.data.tables["Contribution"]),)]
    gone = _live(civi, "Contribution")[0]
    civi.hard_delete("Contribution", gone)
    civi.insert("Contribution", contact_id=1, total_amount=12.5, contribution_status_id=1)
    _run(civi, tmp_path, "civicrm__contribution", reconcile=False)  # full read reconciles anyway
    assert _ids(tmp_path, "contribution", "deleted_in_source") == [gone]
    assert _ids(tmp_path, "contribution", "NOT deleted_in_source") == _live(civi, "Contribution")
    state = _pipeline(tmp_path).state["sources"]["civicrm"]["resources"]["civicrm__contribution"]
    assert state["incremental"] is False and "cursor" not in state
    # After an upgrade to 6.9 the same pipeline switches to modified_date.
    civi.set_version("6.9.0")
    _run(civi, tmp_path, "civicrm__contribution")
    state = _pipeline(tmp_path).state["sources"]["civicrm"]["resources"]["civicrm__contribution"]
    assert state["incremental"] is True and state["cursor"]


@pytest.mark.parametrize("style", ["clean", "wordpress", "wordpress_admin", "standalone"])
def test_each_url_style_loads(style: str, tmp_path: Path) -> None:
    with CiviCRMSandbox(contacts=5, url_style=style, site_key="sk") as civi:  # type: ignore[arg-type]
        settings = _settings(civi, url_style=style)
        source = civicrm_source(settings, civi.api_key, site_key="sk").with_resources(
            "civicrm__contact", "civicrm__email"
        )
        _pipeline(tmp_path).run(source)
        assert _ids(tmp_path, "contact") == [1, 2, 3, 4, 5]
        assert _ids(tmp_path, "email") == _live(civi, "Email")


def test_building_the_source_does_no_io_and_keys_stay_out_of_files(
    civi: CiviCRMSandbox, tmp_path: Path
) -> None:
    source = civicrm_source(_settings(civi), civi.api_key)
    assert civi.requests == []
    assert sorted(source.resources) == sorted(resource_names(_settings(civi)))
    _pipeline(tmp_path).run(source.with_resources("civicrm__contact"))
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert civi.api_key.encode() not in path.read_bytes(), path


def test_id_ranges_stay_compact_and_exact() -> None:
    ranges = IdRanges([])
    for i in [*range(1, 101), 150, 103, 102, 149, 151, 5000]:
        ranges.add(i)
    assert ranges.ranges == [[1, 100], [102, 103], [149, 151], [5000, 5000]]
    ranges.add(101)
    ranges.add(2)  # already there
    assert ranges.ranges == [[1, 103], [149, 151], [5000, 5000]]
    ranges.remove(50)
    ranges.remove(5000)
    ranges.remove(7777)
    assert ranges.ranges == [[1, 49], [51, 103], [149, 151]]
    ranges.add(50)
    assert ranges.ranges == [[1, 103], [149, 151]]
    assert len(list(ranges)) == len(ranges) == 106
    assert 1 in ranges and 103 in ranges and 150 in ranges
    assert 0 not in ranges and 104 not in ranges and 152 not in ranges and "1" not in ranges


def test_lookback_catches_late_commits(civi: CiviCRMSandbox, tmp_path: Path) -> None:
    """A transaction that commits late carries a modified_date older than the cursor."""
    _run(civi, tmp_path, "civicrm__activity", lookback_seconds=600)
    cursor = max(r["modified_date"] for r in civi.data.tables["Activity"].values())
    late = (datetime.strptime(cursor, TS) - timedelta(seconds=120)).strftime(TS)
    civi.data.tables["Activity"][4].update(duration=555, modified_date=late)
    civi.data.tables["Activity"][5].update(duration=556, modified_date="2020-01-01 00:00:00")
    _run(civi, tmp_path, "civicrm__activity", lookback_seconds=600)
    durations = dict(_query(tmp_path, f"SELECT id, duration FROM {RAW}.civicrm__activity"))
    assert durations[4] == 555  # inside the look-back window
    assert durations[5] != 556  # far outside it: only reconciliation-style full reads see it


def test_an_empty_entity_still_gets_its_table(tmp_path: Path) -> None:
    with CiviCRMSandbox(contacts=3, cases_per_contact=0, contributions_per_contact=0) as civi:
        _run(civi, tmp_path, "civicrm__case", "civicrm__case_contact", "civicrm__contribution")
    for table in ("case", "case_contact", "contribution"):
        assert _ids(tmp_path, table) == []


def test_a_deleted_child_row_leaves_on_the_next_run_without_reconciliation(
    civi: CiviCRMSandbox, tmp_path: Path
) -> None:
    """Deleting an e-mail bumps its contact; re-reading the contact replaces its children."""
    _run(civi, tmp_path, reconcile=False)
    emails_of = {r["contact_id"]: i for i, r in civi.data.tables["Email"].items()}
    phones_of = {r["contact_id"]: i for i, r in civi.data.tables["Phone"].items()}
    both = sorted(set(emails_of) & set(phones_of))
    only_email, all_gone = both[0], both[1]
    civi.hard_delete("Phone", phones_of[only_email])  # the contact keeps its e-mail
    civi.hard_delete("Email", emails_of[all_gone])
    civi.hard_delete("Phone", phones_of[all_gone])  # the contact has no e-mail or phone now
    extra = civi.insert("Email", contact_id=only_email, is_primary=False, email="x@example.org")

    _run(civi, tmp_path, reconcile=False)

    # Only the changed contacts' children were read (2 e-mails + 1 tombstone), plus the
    # e-mail of the contact sitting exactly on the cursor: not all 20 contacts' again.
    assert _extracted_rows(tmp_path, "email") == 4
    live = "NOT is_deleted"
    assert set(_ids(tmp_path, "email", live)) == set(_live(civi, "Email"))
    assert set(_ids(tmp_path, "phone", live)) == set(_live(civi, "Phone"))
    assert extra in _ids(tmp_path, "email", live)
    # The childless contact left one tombstone per table; no other contact's rows moved.
    assert _query(
        tmp_path,
        f"SELECT id, contact_id, is_deleted FROM {RAW}.civicrm__email WHERE id < 0",
    ) == [(-all_gone, all_gone, True)]
    people = _query(
        tmp_path,
        f"SELECT COUNT(*) FROM {RAW}.civicrm__email WHERE {live} AND contact_id = ?",
        only_email,
    )
    assert people == [(2,)]


def test_a_contact_never_loaded_is_reported_not_deleted(
    civi: CiviCRMSandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A contact CiviCRM lists but the cursor never reached makes the count differ on every
    run; the run says so (a count, no name) and marks nobody deleted."""
    _run(civi, tmp_path, "civicrm__contact", **DEFAULTS)
    old = civi.data.insert(
        "Contact",
        {
            "contact_type": "Individual",
            "last_name": "Backdated",
            "is_deleted": False,
            "modified_date": "2001-01-01 00:00:00",
        },
    )
    with caplog.at_level("WARNING", logger="connectors.civicrm.source"):
        _run(civi, tmp_path, "civicrm__contact", **DEFAULTS)
    assert _ids(tmp_path, "contact", "deleted_in_source") == []
    assert old not in _ids(tmp_path, "contact")
    messages = [r.getMessage() for r in caplog.records]
    assert any("1 records CiviCRM lists were never loaded" in m for m in messages)
    assert not any("Backdated" in m for m in messages)


# ---------------------------------------------------------------- narrowing down hard deletes
# At 5,000 contacts the held ids are cut into 16 ranges of about 312: one batched request of
# counts finds the differing ranges, one more lists only their ids.


def _contacts_only(contacts: int) -> CiviCRMSandbox:
    """A sandbox with only contacts (and their e-mails, phones, addresses): quick to build."""
    return CiviCRMSandbox(
        contacts=contacts,
        activities_per_contact=0,
        cases_per_contact=0,
        contributions_per_contact=0,
        seed=3,
    )


@pytest.fixture
def many() -> Iterator[CiviCRMSandbox]:
    with _contacts_only(5000) as sandbox:
        yield sandbox


PEOPLE = ("civicrm__contact", "civicrm__email")


def _run_people(civi: CiviCRMSandbox, tmp_path: Path, **overrides: Any) -> None:
    _run(civi, tmp_path, *PEOPLE, page_size=1000, **{**DEFAULTS, **overrides})


def _reconcile_cost(civi: CiviCRMSandbox, since: tuple[int, int]) -> dict[str, int]:
    """What finding deletions cost since ``since`` (requests, answers), counted by the sandbox."""
    requests, answers = since
    listed = [a for a in civi.answers[answers:] if a[0] == "Contact" and a[2] == ("id",)]
    # Each run's field check (fields.py) is one batched getFields request: not reconciling.
    field_checks = sum(1 for a in civi.answers[answers:] if a[:2] == ("Contact", "getFields"))
    return {
        "batched_requests": sum(1 for _, route in civi.http_requests[requests:] if route == "calls")
        - field_checks,
        "counts": sum(
            1 for a in civi.answers[answers:] if a[:3] == ("Contact", "get", ("row_count",))
        ),
        "listings": len(listed),
        "ids_listed": sum(a[3] for a in listed),
    }


def _mark(civi: CiviCRMSandbox) -> tuple[int, int]:
    return len(civi.http_requests), len(civi.answers)


def test_one_hard_delete_among_thousands_is_found_by_narrowing(
    many: CiviCRMSandbox, tmp_path: Path
) -> None:
    _run_people(many, tmp_path)
    gone = _live(many, "Contact")[2345]
    email = next(i for i, r in many.data.tables["Email"].items() if r["contact_id"] == gone)
    many.hard_delete("Contact", gone)
    since = _mark(many)
    _run_people(many, tmp_path)
    assert _ids(tmp_path, "contact", "deleted_in_source") == [gone]
    assert email not in _ids(tmp_path, "email")
    cost = _reconcile_cost(many, since)
    # The top count, one batch of 16 range counts, one batch listing the one differing range;
    # the e-mail table's check reuses the contact table's answers.
    assert cost["batched_requests"] == 2
    assert cost["counts"] == 1 + 16
    assert cost["listings"] == 1
    assert cost["ids_listed"] <= 5000 // 16 + 1  # not the 4,999 a full listing sends

    # Nothing deleted: the count alone.
    since = _mark(many)
    _run_people(many, tmp_path)
    assert _reconcile_cost(many, since) == {
        "batched_requests": 0,
        "counts": 1,
        "listings": 0,
        "ids_listed": 0,
    }


def test_deletes_at_both_ends_and_in_the_middle_with_a_create_are_all_found(
    many: CiviCRMSandbox, tmp_path: Path
) -> None:
    """The first range is open below and the last open above, so the lowest and highest ids
    are covered, and a contact created in the same interval counts as held, not as noise."""
    _run_people(many, tmp_path)
    ids = _live(many, "Contact")
    gone = [ids[0], ids[1700], ids[3100], ids[-1]]
    for cid in gone:
        many.hard_delete("Contact", cid)
    new = many.add_contact()
    since = _mark(many)
    _run_people(many, tmp_path)
    assert _ids(tmp_path, "contact", "deleted_in_source") == sorted(gone)
    assert new in _ids(tmp_path, "contact", "NOT is_deleted")
    cost = _reconcile_cost(many, since)
    assert cost["batched_requests"] == 2 and cost["listings"] == 4
    assert cost["ids_listed"] <= 4 * (5000 // 16 + 2)


def test_narrowing_recurses_while_ranges_are_large(tmp_path: Path) -> None:
    """Above 16 x LEAF held ids a differing range is cut again: one more batch of counts."""
    with _contacts_only(40_000) as civi:
        _run(civi, tmp_path, "civicrm__contact", page_size=20_000, **DEFAULTS)
        gone = _live(civi, "Contact")[31_234]
        civi.hard_delete("Contact", gone)
        since = _mark(civi)
        _run(civi, tmp_path, "civicrm__contact", page_size=20_000, **DEFAULTS)
        assert _ids(tmp_path, "contact", "deleted_in_source") == [gone]
        cost = _reconcile_cost(civi, since)
    assert cost["batched_requests"] == 3 and cost["counts"] == 1 + 16 + 16
    assert cost["listings"] == 1 and cost["ids_listed"] <= 40_000 // 256 + 1


def test_a_permission_glitch_among_thousands_deletes_nobody_and_does_not_narrow(
    many: CiviCRMSandbox, tmp_path: Path
) -> None:
    """Most contacts hidden: narrowing cannot pay, so the ids are listed as before, and the
    guard keeps everyone; everything hidden: the count says so and nothing is listed."""
    _run_people(many, tmp_path)
    ids = _live(many, "Contact")
    many.hide("Contact", ids[: len(ids) * 9 // 10])
    since = _mark(many)
    _run_people(many, tmp_path)
    assert _ids(tmp_path, "contact", "deleted_in_source") == []
    cost = _reconcile_cost(many, since)
    assert cost["batched_requests"] == 0 and cost["counts"] == 1 and cost["listings"] == 1

    many.hide("Contact")
    since = _mark(many)
    _run_people(many, tmp_path)
    assert _ids(tmp_path, "contact", "deleted_in_source") == []
    assert _reconcile_cost(many, since)["listings"] == 0
    state = _pipeline(tmp_path).state["sources"]["civicrm"]["resources"]
    assert state["civicrm__contact"]["held_deletions"] == len(ids)

    many.unhide("Contact")
    _run_people(many, tmp_path)
    assert _ids(tmp_path, "contact", "deleted_in_source") == []
    assert _ids(tmp_path, "contact", "NOT is_deleted") == ids
