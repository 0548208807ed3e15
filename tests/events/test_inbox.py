"""The durable inbox on SQLite (default) and PostgreSQL: the same behaviour on both."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from events.inbox import Change, InboundEvent, PostgresInbox, SqliteInbox, open_inbox


@pytest.fixture(params=["sqlite", "postgres"])
def inbox(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        return open_inbox(tmp_path / "inbox.sqlite3")
    return PostgresInbox(request.getfixturevalue("postgres_dsn"))


def _event(org: str, eid: str, *ids: str, action: str = "update") -> InboundEvent:
    return InboundEvent(org, eid, "salesforce_cdc", (Change("Contact", action, ids),), 1.0)


def test_a_repeated_event_id_is_kept_once_per_member(inbox) -> None:
    assert inbox.accept(_event("a", "e1", "003A"))
    assert not inbox.accept(_event("a", "e1", "003B"))  # the sender's retry
    assert inbox.accept(_event("b", "e1", "003A"))  # another member's id space
    kept = inbox.received_after(0)
    assert [(e.org_id, e.event_id) for e in kept] == [("a", "e1"), ("b", "e1")]
    assert kept[0].changes == (Change("Contact", "update", ("003A",)),)
    assert inbox.seen("a", "e1") and not inbox.seen("a", "e2")


def test_batches_move_through_their_states(inbox) -> None:
    fresh = inbox.accept_many([_event("a", f"e{i}", f"003{i}") for i in range(5)])
    assert fresh == [True] * 5
    seqs = [e.seq for e in inbox.received_after(0)]
    assert inbox.mark_batched(seqs[:3], "a:1-3") == 3
    assert inbox.mark_batched(seqs[:3], "a:1-3") == 0  # a replayed tick moves nothing
    assert [e.seq for e in inbox.received_after(0)] == seqs[3:]
    assert inbox.mark_batch("a:1-3", "launched", run_id="r1") == 3
    assert inbox.mark_batch("a:1-3", "succeeded") == 3
    done = inbox.batch("a:1-3")
    assert {(e.state, e.run_id) for e in done} == {("succeeded", "r1")}
    assert [e.event_id for e in inbox.recent("a", limit=2)] == ["e4", "e3"]
    with pytest.raises(ValueError):
        inbox.mark_batch("a:1-3", "lost")  # type: ignore[arg-type]


def test_rejections_are_kept_bounded_and_apart(inbox) -> None:
    inbox.reject("a", "e9", 401, "bad signature")
    inbox.reject("x" * 5000, None, 404, "unknown member " + "y" * 5000)
    rejected = inbox.rejections()
    assert [r.status for r in rejected] == [404, 401]
    assert len(rejected[0].org_id) <= 100 and len(rejected[0].reason) <= 500
    assert inbox.received_after(0) == []
    assert [r.reason for r in inbox.rejections("a")] == ["bad signature"]


def test_an_unknown_action_or_oversized_id_is_refused(inbox) -> None:
    with pytest.raises(ValueError, match="unknown change action"):
        Change("Contact", "explode")
    with pytest.raises(ValueError, match="event id"):
        inbox.accept(InboundEvent("a", "e" * 300, "standard_webhook"))
    assert not Change("Contact", "gap", ("003A",)).targeted
    assert not Change("Contact", "update").targeted
    assert Change("Contact", "delete", ("003A",)).targeted


def _writer(path: str, start: int) -> None:
    inbox = SqliteInbox(Path(path))
    for i in range(start, start + 200):
        inbox.accept(_event("a", f"e{i}", "003"))


def test_two_processes_write_one_sqlite_inbox_without_losing_events(tmp_path: Path) -> None:
    path = tmp_path / "inbox.sqlite3"
    SqliteInbox(path)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(path), s)) for s in (0, 100)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    kept = SqliteInbox(path).received_after(0)
    assert sorted(int(e.event_id[1:]) for e in kept) == list(range(300))  # 100 overlap once
