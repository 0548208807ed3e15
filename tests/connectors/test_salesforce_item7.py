"""Salesforce correctness (issue #19 item 7): deletions the delete log forgot, loads that stop
early or lose a field, replication windows Salesforce refuses, and messages that name the
object. Real dlt pipelines into DuckDB against the loopback sandbox, which refuses and
forgets what Salesforce refuses and forgets.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.holds import holds_in_state
from connectors.salesforce_npsp.client import SalesforceApiError, SalesforceClient
from connectors.salesforce_npsp.settings import ClientCredentials
from sandboxes.salesforce_npsp import SalesforceSandbox
from tests.connectors.test_salesforce_source import SIZES, Harness


@pytest.fixture()
def harness(tmp_path: Path) -> Iterator[Harness]:
    with SalesforceSandbox(sizes=SIZES, page_size=7) as sandbox:
        yield Harness(sandbox, tmp_path)


def _holds(h: Harness) -> dict[str, str]:
    return {x.name: x.reason for x in holds_in_state(h.pipeline.state)}


def _live(h: Harness) -> set[str]:
    return {r[0] for r in h.query("select id from npsp__contact where not is_deleted")}


# ----------------------------------------------------------------------------- deletions


def test_hard_deletes_are_found_when_the_delete_log_no_longer_covers_the_run(
    harness: Harness,
) -> None:
    """Hard deleted (or binned, emptied and purged from the log): queryAll and getDeleted
    both forget them. earliestDateAvailable says so, and the ids are compared instead."""
    sf = harness.sf
    harness.load(reconcile_days=None)
    gone = sf.ids("Contact")[:3]
    sf.hard_delete_records("Contact", gone)
    harness.clock_offset = timedelta(minutes=2)  # getDeleted needs a minute's window
    _, report = harness.load(reconcile_days=None)
    assert _live(harness) == set(sf.ids("Contact"))
    rows = harness.query(
        "select is_deleted, last_name, birthdate from npsp__contact "
        f"where id in ('{gone[0]}', '{gone[1]}', '{gone[2]}')"
    )
    assert rows == [(True, None, None)] * 3  # nothing personal left of them
    assert any("earliestDateAvailable" in n for n in report.notes)
    assert _holds(harness) == {}


def test_a_stop_while_comparing_ids_compares_again_next_run(harness: Harness) -> None:
    """Weeks since the last load, so the delete log cannot cover the gap and the ids are
    compared; the allocation runs out part-way through that listing. The next run compares
    again, though its own window is recent enough to trust the log."""
    sf = harness.sf
    harness.load(reconcile_days=None, full_refresh_days=None)
    gone = sf.ids("Contact")[:3]
    sf.delete_records("Contact", gone)
    sf.purge_records("Contact", gone)
    harness.clock_offset = timedelta(days=20)
    # A change just before the late run moves the row cursor past the gap.
    later = datetime.now(UTC) + timedelta(days=20, minutes=-1)
    sf.update_records("Contact", sf.ids("Contact")[:2], {"MailingCity": "Later"}, at=later)
    sf.set_api_usage(86, 100)  # describes and query fit; the listing does not
    asked = len(sf.requests)
    _, report = harness.load(reconcile_days=None, full_refresh_days=None)
    requests = sf.requests[asked:]
    assert report.stopped and any(r.endswith("/query") for r in requests)  # in the listing
    assert not any("/deleted" in r for r in requests)
    assert set(gone) <= _live(harness)
    sf.set_api_usage(0, 15000)
    harness.clock_offset = timedelta(days=20, minutes=1)
    harness.load(reconcile_days=None, full_refresh_days=None)
    assert _live(harness) == set(sf.ids("Contact")) and _holds(harness) == {}


def test_ids_are_compared_every_reconcile_days(harness: Harness) -> None:
    """Records gone without a trace in the delete log are found by the periodic listing
    (and not before it is due)."""
    sf = harness.sf
    harness.load()
    gone = sf.ids("Contact")[:2]
    sf.lose_sight_of("Contact", gone)
    harness.load()  # reconciled at the first load, a day is not up yet
    assert set(gone) <= _live(harness)
    harness.clock_offset = timedelta(days=1, seconds=1)
    harness.load()
    assert _live(harness) == set(sf.ids("Contact"))


def test_a_full_refresh_removes_what_no_longer_exists(harness: Harness) -> None:
    """The periodic full refresh re-reads everything; what it no longer sees is gone."""
    sf = harness.sf
    harness.load(reconcile_days=None)
    gone = sf.ids("Contact")[:2]
    sf.lose_sight_of("Contact", gone)
    harness.load(reconcile_days=None, full_refresh=True, bulk_threshold=1, bulk_poll_seconds=0)
    assert _live(harness) == set(sf.ids("Contact"))
    assert harness.query("select count(*) from npsp__contact") == [(40,)]


def test_records_edited_during_a_split_full_read_are_not_taken_for_deleted(
    tmp_path: Path,
) -> None:
    """A query split to keep its URL short leaves a record edited between its parts for the
    next run; the full read's comparison of ids must not count it as gone."""
    with SalesforceSandbox(sizes=SIZES, page_size=7, max_url_length=1500) as sf:
        for i in range(30):
            sf.add_field("Contact", f"Programme_Specific_Question_{i:02d}__c", default="a")
        h = Harness(sf, tmp_path)
        h.load(max_url_length=1500)
        edited = sf.ids("Contact")[:2]
        sf.edit_during_read("Contact", edited, datetime.now(UTC) + timedelta(hours=1))
        h.load(max_url_length=1500, full_refresh=True)
        assert set(edited) <= _live(h) and _holds(h) == {}


def test_a_listing_far_short_of_the_loaded_ids_deletes_nobody_and_holds(
    harness: Harness,
) -> None:
    sf = harness.sf
    harness.load()
    before = _live(harness)
    sf.lose_sight_of("Contact", sf.ids("Contact")[:30])  # a sharing change, say
    harness.clock_offset = timedelta(days=1, seconds=1)
    harness.load()
    assert _live(harness) == before
    [reason] = _holds(harness).values()
    assert reason.startswith("30 of 40 loaded records are no longer listed by Salesforce")
    assert "003" not in reason  # counts, never ids
    # Held: the next run compares again, though a day is not up; all back, the hold lifts.
    sf.regain_sight_of("Contact")
    harness.load()
    assert _holds(harness) == {} and _live(harness) == before


def test_a_deliberate_mass_deletion_goes_through_once_allowed(harness: Harness) -> None:
    sf = harness.sf
    harness.load()
    gone = sf.ids("Contact")[:30]
    sf.hard_delete_records("Contact", gone)
    harness.clock_offset = timedelta(minutes=2)
    harness.load()
    assert "held_deletions" in _holds(harness) and len(_live(harness)) == 40
    harness.load(max_deleted_share=1)
    assert _holds(harness) == {} and _live(harness) == set(sf.ids("Contact"))


# ----------------------------------------------------------------------------- replication window


def test_the_sandbox_refuses_replication_windows_as_salesforce_does(harness: Harness) -> None:
    client = SalesforceClient(harness.settings(), ClientCredentials(harness.sf.client_secret))
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    short = now + timedelta(seconds=50)
    with pytest.raises(SalesforceApiError, match="INVALID_REPLICATION_DATE"):
        client.deleted("Contact", f"{now:%Y-%m-%dT%H:%M:%SZ}", f"{short:%Y-%m-%dT%H:%M:%SZ}")
    old = now - timedelta(days=31)
    with pytest.raises(SalesforceApiError, match="INVALID_REPLICATION_DATE"):
        client.deleted("Contact", f"{old:%Y-%m-%dT%H:%M:%SZ}", f"{now:%Y-%m-%dT%H:%M:%SZ}")


def test_runs_under_a_minute_apart_are_never_refused_and_carry_the_window(
    harness: Harness,
) -> None:
    sf = harness.sf
    # The hub's clock reads the start of the minute before this one (behind the sandbox's,
    # so the deletion is after the first load), and both loads fall in that minute.
    start_of_minute = timedelta(seconds=1 - datetime.now(UTC).second - 60)
    harness.clock_offset = start_of_minute
    harness.load(lookback_seconds=0, reconcile_days=None)
    gone = sf.ids("Contact")[:1]
    sf.delete_records("Contact", gone)
    sf.purge_records("Contact", gone)  # only the delete log still knows
    _, report = harness.load(lookback_seconds=0, reconcile_days=None)  # seconds later
    assert report.stopped is None
    harness.clock_offset = start_of_minute + timedelta(minutes=2)  # the carried window
    harness.load(lookback_seconds=0, reconcile_days=None)
    assert gone[0] not in _live(harness)


def test_a_refused_replication_window_compares_ids_instead_of_failing(
    harness: Harness,
) -> None:
    sf = harness.sf
    harness.load(reconcile_days=None)
    gone = sf.ids("Contact")[:1]
    sf.delete_records("Contact", gone)
    sf.purge_records("Contact", gone)
    sf.refuse_next_replication()
    harness.clock_offset = timedelta(minutes=2)
    _, report = harness.load(reconcile_days=None)
    assert report.stopped is None and any("compared instead" in n for n in report.notes)
    assert _live(harness) == set(sf.ids("Contact"))


def test_a_member_back_after_weeks_compares_ids_instead_of_asking_the_log(
    harness: Harness,
) -> None:
    sf = harness.sf
    harness.load(reconcile_days=None, full_refresh_days=None)
    gone = sf.ids("Contact")[:2]
    sf.delete_records("Contact", gone)
    sf.purge_records("Contact", gone)
    harness.clock_offset = timedelta(days=20)
    _, report = harness.load(reconcile_days=None, full_refresh_days=None)
    assert report.stopped is None
    assert _live(harness) == set(sf.ids("Contact"))


# ----------------------------------------------------------------------------- stop early


def test_an_exhausted_allocation_holds_the_load_and_the_next_run_lifts_it(
    harness: Harness,
) -> None:
    sf = harness.sf
    sf.set_api_usage(15000, 15000)
    _, report = harness.load()
    assert report.stopped
    reason = _holds(harness)["stopped_early"]
    assert "daily API allocation is exhausted" in reason and "Contact" in reason
    sf.set_api_usage(0)
    _, report = harness.load()
    assert report.rows["npsp__contact"] == 40 and _holds(harness) == {}


# ----------------------------------------------------------------------------- field-level security


def test_a_field_hidden_mid_way_holds_and_the_changes_are_read_once_it_is_back(
    harness: Harness,
) -> None:
    sf = harness.sf
    harness.load()
    changed = sf.ids("Contact")[:5]
    birthdates = dict(harness.query("select id, birthdate from npsp__contact"))
    sf.hide_field("Contact", "Birthdate")
    sf.update_records("Contact", changed, {"LastName": "Changedname"})
    _, report = harness.load()
    reason = _holds(harness)["fields_hidden"]
    assert "Contact.Birthdate" in reason and any("Birthdate" in p for p in report.problems)
    assert dict(harness.query("select id, birthdate from npsp__contact")) == birthdates
    sf.show_field("Contact", "Birthdate")
    harness.load()
    assert _holds(harness) == {}
    assert dict(harness.query("select id, birthdate from npsp__contact")) == birthdates
    renamed = harness.query("select id from npsp__contact where last_name = 'Changedname'")
    assert sorted(r[0] for r in renamed) == sorted(changed)


def test_a_field_hidden_between_describe_and_query_holds_too(harness: Harness) -> None:
    sf = harness.sf
    harness.load()
    sf.update_records("Contact", sf.ids("Contact")[:2], {"LastName": "Changedname"})
    sf.hide_field("Contact", "Birthdate", at_next_query=True)
    harness.load()  # INVALID_FIELD from the query, not a failed load
    assert "Contact.Birthdate" in _holds(harness)["fields_hidden"]
    sf.show_field("Contact", "Birthdate")
    harness.load()
    assert _holds(harness) == {}
    assert harness.query("select count(*) from npsp__contact where last_name = 'Changedname'") == [
        (2,)
    ]


def test_a_field_left_out_of_the_results_holds_too(harness: Harness) -> None:
    sf = harness.sf
    harness.load()
    birthdates = dict(harness.query("select id, birthdate from npsp__contact"))
    changed = sf.ids("Contact")[:3]
    sf.update_records("Contact", changed, {"LastName": "Changedname"})
    sf.omit_from_results("Contact", "Birthdate")
    harness.load()
    assert "Contact.Birthdate" in _holds(harness)["fields_hidden"]
    assert dict(harness.query("select id, birthdate from npsp__contact")) == birthdates
    sf.omit_from_results("Contact", "Birthdate", omit=False)
    harness.load()
    assert _holds(harness) == {}
    assert dict(harness.query("select id, birthdate from npsp__contact")) == birthdates
    renamed = harness.query("select id from npsp__contact where last_name = 'Changedname'")
    assert sorted(r[0] for r in renamed) == sorted(changed)


# ----------------------------------------------------------------------------- API choice, messages


def test_a_failing_record_count_falls_back_to_rest(harness: Harness) -> None:
    harness.sf.fail_record_count(404, "NOT_FOUND")
    _, report = harness.load(bulk_threshold=1)
    assert report.methods["npsp__contact"] == "rest" and report.rows["npsp__contact"] == 40
    assert any("record count of Contact" in n and "REST" in n for n in report.notes)


@pytest.mark.parametrize(
    ("code", "advice"),
    [
        ("INVALID_QUERY_LOCATOR", "at most 10 open cursors per user"),
        ("QUERY_TIMEOUT", "lower 'bulk_threshold'"),
    ],
)
def test_query_cursor_errors_name_the_object_and_the_cause(
    harness: Harness, code: str, advice: str
) -> None:
    harness.sf.fail_next_query_page(code)
    with pytest.raises(SalesforceApiError, match=code) as err:
        harness.load()
    text = " ".join(str(err.value).split())
    assert text.startswith("npsp__contact (Contact): ") and advice in text
    assert "next run reads again from the last completed load" in text
    harness.load()  # and so it does
    assert harness.query("select count(*), count(distinct id) from npsp__contact") == [(40, 40)]


def test_removed_fields_must_name_object_and_field() -> None:
    from connectors.salesforce_npsp.settings import SalesforceSettings

    with pytest.raises(ValueError, match=r"'Object\.Field'"):
        SalesforceSettings(login_url="http://127.0.0.1:9", client_id="x", removed_fields=("Ab",))
