"""Targeted reads by record id (what events name) against the loopback org, into DuckDB.

A targeted read must bring the same rows a window read brings for those records, ask
Salesforce only for them (the sandbox keeps every SOQL it answered), leave the cursors
alone so the next window read loses nothing, and apply deletions under the usual guard.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest

from connectors.holds import holds_in_state
from connectors.salesforce_npsp.deletions import HELD_DELETIONS
from connectors.salesforce_npsp.settings import ClientCredentials, SalesforceSettings
from connectors.salesforce_npsp.source import FIELDS_HIDDEN, npsp_source, raw_pipeline
from connectors.salesforce_npsp.targeted import (
    MAX_TARGETED_IDS,
    ObjectTargets,
    id18,
    id_chunks,
    in_clause,
    plan_targets,
)
from events.inbox import Change
from sandboxes.salesforce_npsp import SalesforceSandbox, SandboxSizes, make_id

SIZES = SandboxSizes(
    contacts=60,
    programs=2,
    services_per_program=1,
    engagements=20,
    deliveries=10,
    opportunities=2,
    recurring_donations=1,
    outcomes=4,
)
OBJECTS = ("npsp__contact", "pmdm__program_engagement")
# Every raw column but dlt's own bookkeeping: what two reads of a record must agree on.
SKIP = ("_dlt_load_id", "_dlt_id")


class Org:
    """A sandbox org and one member pipeline into a DuckDB file."""

    def __init__(self, sf: SalesforceSandbox, tmp_path: Path) -> None:
        self.sf = sf
        self.db = tmp_path / "hub.duckdb"
        self.pipeline = raw_pipeline(
            "sfdemo", dlt.destinations.duckdb(str(self.db)), tmp_path / "pipelines"
        )

    def settings(self, **overrides: Any) -> SalesforceSettings:
        values: dict[str, Any] = {
            "login_url": self.sf.url,
            "client_id": self.sf.client_id,
            "lookback_seconds": 5,
            "backoff_seconds": 0.01,
            "max_retries": 1,
            "objects": OBJECTS,
        }
        return SalesforceSettings(**{**values, **overrides})

    def load(self, targets: dict[str, ObjectTargets] | None = None, **overrides: Any) -> Any:
        source = npsp_source(
            self.settings(**overrides),
            ClientCredentials(self.sf.client_secret),
            clock=lambda: datetime.now(UTC) + timedelta(seconds=1),
            targets=targets,
        )
        return self.pipeline.run(source)

    def rows(self, table: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        with duckdb.connect(str(self.db), read_only=True) as con:
            cur = con.execute(
                f"SELECT * FROM raw_sfdemo.{table} WHERE id IN ({', '.join('?' * len(ids))})",
                ids,
            )
            names = [d[0] for d in cur.description]
            return {
                row[names.index("id")]: {
                    n: v for n, v in zip(names, row, strict=True) if n not in SKIP
                }
                for row in cur.fetchall()
            }

    def state(self, resource: str) -> dict[str, Any]:
        return self.pipeline.state["sources"]["salesforce_npsp"]["resources"][resource]


@pytest.fixture()
def org(tmp_path: Path) -> Iterator[Org]:
    with SalesforceSandbox(sizes=SIZES) as sf:
        yield Org(sf, tmp_path)


def test_ids_in_either_form_become_the_18_character_form() -> None:
    full = make_id("003", 4242)
    assert id18(full[:15]) == id18(full) == id18(full.upper()) == id18(full.lower()) == full
    for bad in ("003' OR Name != '", "003", "0035g00000000aB!", "", full[:15] + "999"):
        with pytest.raises(ValueError):
            id18(bad)


def test_a_plan_reads_by_id_only_when_every_change_names_known_records() -> None:
    sobjects = ["Contact", "pmdm__ProgramEngagement__c"]
    a, b = make_id("003", 77), make_id("a0C", 5)
    targets, why = plan_targets(
        [
            Change("Contact", "update", (a,)),
            Change("pmdm__programengagement__c", "create", (b,)),
            Change("Contact", "delete", (a[:15],)),
        ],
        sobjects,
    )
    assert targets == {
        "Contact": ObjectTargets((a,), frozenset({a})),
        "pmdm__ProgramEngagement__c": ObjectTargets((b,)),
    }
    assert why.startswith("2 record(s) read by id")
    window = [
        ([Change("Contact", "gap", (a,))], "gap"),
        ([Change("Contact", "overflow", ())], "overflow"),
        ([Change("Contact", "update", ())], "did not say which"),
        ([Change(None, "change", ())], "did not say which"),
        ([Change("Lead", "update", (a,))], "does not load"),
        ([Change("Contact", "update", ("003' OR Id != '",))], "other than a Salesforce id"),
    ]
    for changes, reason in window:  # one such change among targeted ones is enough
        targets, why = plan_targets([Change("Contact", "update", (a,)), *changes], sobjects)
        assert targets is None and reason in why, (changes, why)
    assert plan_targets([], sobjects) == (None, "the batch holds no change")
    many = [id18(f"0035g0000{n:06d}") for n in range(MAX_TARGETED_IDS + 1)]
    targets, why = plan_targets([Change("Contact", "update", tuple(many))], sobjects)
    assert targets is None and "more than a window read costs" in why


def test_id_chunks_keep_every_query_under_the_url_limit() -> None:
    ids = [id18(f"0035g0000{n:06d}") for n in range(300)]
    chunks = list(id_chunks(ids, 1500))
    assert [i for chunk in chunks for i in chunk] == ids and len(chunks) > 3
    import httpx

    for chunk in chunks:
        encoded = httpx.URL("", params={"q": in_clause(chunk)}).raw_path
        assert len(encoded) <= 1500 + 10


def test_a_targeted_read_asks_only_for_the_named_records_and_matches_a_window_read(
    org: Org,
) -> None:
    sf = org.sf
    org.load()
    cursors = {r: dict(org.state(r)) for r in OBJECTS}
    contacts = sf.ids("Contact")
    named, other = contacts[:3], contacts[3]
    sf.update_records("Contact", named, {"LastName": "Eventname"})
    sf.update_records("Contact", [other], {"LastName": "Unnamed"})
    asked = len(sf.queries)

    info = org.load({"Contact": ObjectTargets(tuple(named))})
    queries = sf.queries[asked:]
    assert queries and all(f"FROM Contact WHERE {in_clause(sorted(named))}" in q for q in queries)
    assert not any("SystemModstamp >=" in q for q in queries)
    assert not any("/deleted" in r for r in sf.requests)  # the delete log was not asked
    assert set(info.load_packages[0].schema_update) <= {"npsp__contact", "_dlt_pipeline_state"}
    targeted = org.rows("npsp__contact", [*named, other])
    assert {i: r["last_name"] for i, r in targeted.items() if i in named} == dict.fromkeys(
        named, "Eventname"
    )
    assert targeted[other]["last_name"] != "Unnamed"  # not named: left for the window read
    for resource in OBJECTS:  # neither cursor moved, nothing else in the state either
        assert {k: v for k, v in org.state(resource).items()} == cursors[resource]

    org.load()  # the window read after it: the unnamed change arrives, nothing lost
    window = org.rows("npsp__contact", [*named, other])
    assert window[other]["last_name"] == "Unnamed"
    for record_id in named:  # the same row, column for column, as the window read gives
        assert targeted[record_id] == window[record_id]


def test_many_ids_are_read_in_chunks_each_under_the_url_limit(tmp_path: Path) -> None:
    with SalesforceSandbox(sizes=SIZES, max_url_length=2000) as sf:
        org = Org(sf, tmp_path)
        org.load(max_url_length=2000)
        contacts = sf.ids("Contact")
        sf.update_records("Contact", contacts, {"MailingCity": "Chunked"})
        asked = len(sf.queries)
        org.load({"Contact": ObjectTargets(tuple(contacts))}, max_url_length=2000)
        queries = sf.queries[asked:]
        assert len(queries) > 1  # 60 ids do not fit one 2,000-byte URL (the sandbox says 414)
        cities = org.rows("npsp__contact", contacts)
        assert {r["mailing_city"] for r in cities.values()} == {"Chunked"}


def test_a_cdc_delete_marks_the_record_deleted_and_hard_deletes_are_guarded(org: Org) -> None:
    sf = org.sf
    org.load()
    contacts = sf.ids("Contact")
    binned, purged = contacts[0], contacts[1]
    sf.delete_records("Contact", [binned])  # in the recycle bin: queryAll still shows it
    sf.hard_delete_records("Contact", [purged])  # gone from every query
    deleted = frozenset({binned, purged})
    org.load({"Contact": ObjectTargets((binned, purged), deleted)})
    rows = org.rows("npsp__contact", [binned, purged])
    assert rows[binned]["is_deleted"] is True and rows[binned]["last_name"] is None
    assert rows[purged]["is_deleted"] is True and rows[purged]["last_name"] is None
    assert not holds_in_state(org.pipeline.state)

    # More hard deletions than max_deleted_share allows: none applied, the member is held.
    many = contacts[10:25]
    sf.hard_delete_records("Contact", many)
    org.load({"Contact": ObjectTargets(tuple(many), frozenset(many))}, max_deleted_share=0.1)
    rows = org.rows("npsp__contact", many)
    assert not any(r["is_deleted"] for r in rows.values())
    holds = holds_in_state(org.pipeline.state)
    assert [h.name for h in holds] == [HELD_DELETIONS]
    assert "15 of 58 loaded records" in holds[0].reason


def test_a_targeted_read_makes_the_same_hidden_field_checks(org: Org) -> None:
    sf = org.sf
    org.load()
    contacts = sf.ids("Contact")
    sf.update_records("Contact", contacts[:2], {"LastName": "Hiddenchange"})
    sf.hide_field("Contact", "Birthdate")  # read at the last load, unreadable now
    asked = len(sf.queries)
    cursor = org.state("npsp__contact")["cursor"]
    org.load({"Contact": ObjectTargets(tuple(contacts[:2]))})
    assert sf.queries[asked:] == []  # held before reading: a merge would blank Birthdate
    assert [h.name for h in holds_in_state(org.pipeline.state)] == [FIELDS_HIDDEN]
    assert org.state("npsp__contact")["cursor"] == cursor
    rows = org.rows("npsp__contact", contacts[:2])
    assert not any(r["last_name"] == "Hiddenchange" for r in rows.values())
    assert all(r["birthdate"] is not None for r in rows.values())

    # Hidden after describe, at the query itself: refused (INVALID_FIELD), held the same way.
    sf.show_field("Contact", "Birthdate")
    org.load()  # the window read lifts the hold
    sf.hide_field("Contact", "Birthdate", at_next_query=True)
    org.load({"Contact": ObjectTargets(tuple(contacts[:2]))})
    assert [h.name for h in holds_in_state(org.pipeline.state)] == [FIELDS_HIDDEN]
