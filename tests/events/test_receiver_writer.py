"""The receiver's group-commit writer and the inbox methods it adds, on SQLite and
PostgreSQL: batched rejections, and the bound on how many are kept."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from events.inbox import Change, InboundEvent, PostgresInbox, open_inbox
from events.writer import GroupWriter, InboxUnavailable


@pytest.fixture(params=["sqlite", "postgres"])
def inbox(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        return open_inbox(tmp_path / "inbox.sqlite3")
    return PostgresInbox(request.getfixturevalue("postgres_dsn"))


def test_rejections_are_batched_and_pruned_to_the_newest(inbox) -> None:
    inbox.reject_many([("a", f"e{i}", 401, "bad signature") for i in range(30)])
    assert inbox.prune_rejections(keep=10) == 20
    kept = inbox.rejections(limit=100)
    assert [r.event_id for r in kept] == [f"e{i}" for i in range(29, 19, -1)]
    assert inbox.prune_rejections(keep=10) == 0


def test_the_writer_commits_concurrent_accepts_together(inbox) -> None:
    writer = GroupWriter(inbox)
    writer.start()

    async def send() -> list[list[bool]]:
        events = [
            [InboundEvent("a", f"e{i}", "standard_webhook", (Change("Contact", "update", ("1",)),))]
            for i in range(50)
        ]
        events.append([InboundEvent("a", "e0", "standard_webhook")])  # a repeat in the burst
        return await asyncio.gather(*(writer.accept(e) for e in events))

    try:
        answers = asyncio.run(send())
        writer.reject("a", "x1", 401, "bad signature")
    finally:
        writer.stop()
    assert answers == [[True]] * 50 + [[False]]
    assert len(inbox.received_after(0)) == 50
    assert writer.stats.accepted == 50 and writer.stats.commits < 51
    assert [r.event_id for r in inbox.rejections()] == ["x1"]


def test_a_failed_commit_reaches_every_waiter(tmp_path: Path) -> None:
    inbox = open_inbox(tmp_path / "inbox.sqlite3")
    writer = GroupWriter(inbox)
    writer.start()
    inbox._connection().execute("DROP TABLE inbox_event")  # the commit now fails

    async def send() -> None:
        await writer.accept([InboundEvent("a", "e1", "standard_webhook")])

    try:
        with pytest.raises(InboxUnavailable):
            asyncio.run(send())
    finally:
        writer.stop()
    assert writer.stats.errors == 1
