"""The inbox sensor decides from the inbox and the instance: real sensor evaluations against
a persistent Dagster instance and a real SQLite inbox (no daemon; see test_events_daemon.py
for the daemon's own tick)."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.utils import make_new_run_id

from events.inbox import Change, InboundEvent, PostgresInbox, inbox_location, open_inbox
from pipelines.definitions import defs
from pipelines.defs.events.sensors import inbox_events
from pipelines.defs.ingest.loads import load_request
from pipelines.lib.event_batches import SETTLE_SECONDS, BatchPlan, next_cursor
from pipelines.lib.hub import HubResource
from pipelines.lib.members import MEMBERS
from sandboxes.salesforce_npsp import make_id

CONTACT = make_id("003", 1)


def _salesforce(folder: Path, org: str) -> None:
    config = {
        "name": org.title(),
        "connector": {
            "kind": "salesforce_npsp",
            "login_url": "https://login.salesforce.com",
            "client_id": "key",
            "client_secret": {"env": f"HUB_{org.upper()}_SF_SECRET"},
        },
    }
    (folder / f"{org}.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")


def _civicrm(folder: Path, org: str) -> None:
    config = {
        "name": org.title(),
        "connector": {
            "kind": "civicrm",
            "site_url": "https://crm.example.org",
            "api_key": {"env": f"HUB_{org.upper()}_CIVI_KEY"},
        },
    }
    (folder / f"{org}.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")


@functools.cache
def _definitions() -> dg.Definitions:
    """The code location's definitions, loaded once for the module (seconds each time)."""
    return defs()


class Hub:
    """Member files, a persistent instance with their partitions, the inbox, sensor ticks."""

    def __init__(self, tmp_path: Path, instance: dg.DagsterInstance) -> None:
        self.members = tmp_path / "members"
        self.members.mkdir()
        self.home = tmp_path / "hub"
        self.instance = instance
        self.resource = HubResource(home=str(self.home), members_dir=str(self.members))
        self.inbox = open_inbox(inbox_location(self.home))
        self.definitions = _definitions()
        self.cursor: str | None = None

    def send(self, org: str, count: int, *ids: str, action: str = "update") -> None:
        """``count`` events for ``org`` in one transaction, as a burst reaches the receiver."""
        stamp = time.time()
        self.inbox.accept_many(
            [
                InboundEvent(
                    org, f"{org}-{stamp}-{n}", "salesforce_cdc", (Change("Contact", action, ids),)
                )
                for n in range(count)
            ]
        )

    def tick(self, cursor: str | None = "current") -> dg.SensorExecutionData:
        context = dg.build_sensor_context(
            instance=self.instance,
            instance_ref=self.instance.get_ref(),
            cursor=self.cursor if cursor == "current" else cursor,
            resources={"hub": self.resource},
            definitions=self.definitions,
        )
        data = inbox_events.evaluate_tick(context)  # run requests resolved as the daemon does
        self.cursor = data.cursor
        return data


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("HUB_EVENTS_INBOX", raising=False)
    with dg.instance_for_test() as instance:  # persistent (SQLite), as the daemon's
        yield Hub(tmp_path, instance)


def test_a_burst_becomes_one_run_per_member_and_a_replayed_tick_batches_nothing(hub: Hub) -> None:
    _salesforce(hub.members, "acme")
    _civicrm(hub.members, "bridge")
    hub.instance.add_dynamic_partitions(MEMBERS.name, ["acme", "bridge"])
    assert hub.tick().skip_message.startswith("no new event")

    started = time.monotonic()
    hub.send("acme", 100, CONTACT)  # a hundred events within a second
    hub.send("bridge", 2)
    assert time.monotonic() - started < 1
    before = hub.cursor
    first = hub.tick()
    requests = {r.partition_key: r for r in first.run_requests or []}
    assert sorted(requests) == ["acme", "bridge"]  # one run per member, not 102
    acme = requests["acme"]
    seqs = [e.seq for e in hub.inbox.batch(acme.run_key)]
    assert len(seqs) == 100 and acme.run_key == f"acme:events:{seqs[0]}-{seqs[-1]}"
    assert {k: v for k, v in acme.tags.items() if k.startswith("hub/")} == {
        "hub/trigger": "event",
        "hub/member": "acme",
        "hub/batch": acme.run_key,
    }
    for org, kind in (("acme", "salesforce_npsp"), ("bridge", "civicrm")):  # a member's load
        load = load_request(org, kind, run_key="any", trigger="any")
        assert requests[org].asset_selection == load.asset_selection
    assert {e.state for e in hub.inbox.recent(limit=200)} == {"batched"}

    # The same tick again (the daemon died before storing the cursor): no new batch. The
    # batches are requested again under the same run keys, as no run exists for them yet;
    # the daemon creates a run at most once per run key.
    replay = hub.tick(cursor=before)
    assert sorted((r.partition_key, r.run_key) for r in replay.run_requests or []) == sorted(
        (r.partition_key, r.run_key) for r in requests.values()
    )
    assert len({e.batch_id for e in hub.inbox.recent(limit=200)}) == 2

    # New events while the member's run is still queued join the next batch, not a second
    # queued run: the first run is created (queued), then a second burst arrives.
    for request in requests.values():
        hub.instance.add_run(
            dg.DagsterRun(
                job_name="__ASSET_JOB",
                run_id=make_new_run_id(),
                status=dg.DagsterRunStatus.NOT_STARTED,  # created, not launched yet
                tags=request.tags,
            )
        )
    hub.send("acme", 5, CONTACT)
    waiting = hub.tick()
    assert not waiting.run_requests
    assert "acme: 5 event(s) wait, its last batch's run has not started yet" in str(
        waiting.skip_message
    )
    assert {e.state for e in hub.inbox.recent("acme", limit=5)} == {"received"}


def test_events_of_members_not_ready_wait_and_those_of_members_gone_fail(hub: Hub) -> None:
    _salesforce(hub.members, "acme")  # valid, no partition yet
    (hub.members / "broken.yaml").write_text("name: [unclosed", encoding="utf-8")
    hub.instance.add_dynamic_partitions(MEMBERS.name, ["broken"])
    hub.send("acme", 3, CONTACT)
    hub.send("broken", 1, CONTACT)
    hub.send("gone", 2, CONTACT)  # accepted while its file existed; the file is gone since

    skipped = hub.tick()
    assert not skipped.run_requests
    message = str(skipped.skip_message)
    assert "acme: 3 event(s) wait, no partition yet" in message
    assert "broken: 1 event(s) wait, its member file is invalid" in message
    gone = hub.inbox.recent("gone")
    assert {(e.state, e.detail) for e in gone} == {
        ("failed", "not loaded: no member file: the member has left the hub")
    }
    assert json.loads(skipped.cursor or "")["seq"] == 0  # never past an event left waiting

    hub.instance.add_dynamic_partitions(MEMBERS.name, ["acme"])  # member_files' work
    ready = hub.tick()
    assert [r.partition_key for r in ready.run_requests or []] == ["acme"]
    assert {e.state for e in hub.inbox.recent("acme")} == {"batched"}


def test_the_cursor_stops_below_waiting_and_unsettled_events(tmp_path: Path) -> None:
    inbox = open_inbox(tmp_path / "inbox.sqlite3")
    inbox.accept_many(
        [InboundEvent("acme", f"e{n}", "standard_webhook", (Change(None),)) for n in range(4)]
    )
    events = inbox.received_after(0)
    now = time.time()
    settled = now + SETTLE_SECONDS + 1
    assert next_cursor(0, events, BatchPlan(), now=now) == 0  # all too recent
    assert next_cursor(0, events, BatchPlan(), now=settled) == events[-1].seq
    plan = BatchPlan(waiting={"acme": ([events[2].seq, events[3].seq], "no partition")})
    assert next_cursor(0, events, plan, now=settled) == events[1].seq


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_the_inbox_lists_batches_by_state_and_keeps_notes(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if store == "sqlite":
        inbox = open_inbox(tmp_path / "inbox.sqlite3")
    else:
        inbox = PostgresInbox(request.getfixturevalue("postgres_dsn"))
    inbox.accept_many(
        [InboundEvent(org, f"{org}{n}", "salesforce_cdc", ()) for org in "ab" for n in range(3)]
    )
    a, b = ([e.seq for e in inbox.recent(org)][::-1] for org in "ab")
    inbox.mark_batched(a, "a:events:x")
    inbox.mark_batched(b[:2], "b:events:y")
    inbox.mark_batch("a:events:x", "launched", run_id="run-a")
    assert [(s.batch_id, s.events, s.state, s.run_id) for s in inbox.batches()] == [
        ("b:events:y", 2, "batched", None),
        ("a:events:x", 3, "launched", "run-a"),
    ]
    assert [s.batch_id for s in inbox.batches(states=["launched"])] == ["a:events:x"]
    assert [s.batch_id for s in inbox.batches("b", states=["batched", "launched"])] == [
        "b:events:y"
    ]
    (summary,) = inbox.batches("a")
    assert (summary.first_seq, summary.last_seq) == (a[0], a[-1])
    assert inbox.note_batch("a:events:x", "read by id") == 3
    assert {(e.state, e.detail) for e in inbox.batch("a:events:x")} == {("launched", "read by id")}
    with pytest.raises(ValueError):
        inbox.batches(states=["lost"])  # type: ignore[list-item]
