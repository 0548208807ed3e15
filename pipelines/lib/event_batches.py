"""From inbox events to member runs and back: batches, their run tags, and their states.

The inbox sensor coalesces each member's new events into one batch per tick (one run of the
member's raw partition, ``run_key`` = the batch id); the run carries the batch id in a tag,
so the load can read what the events said (pipelines/lib/raw_assets.py) and the run status
sensors can write back what became of it. The rules that decide are here, apart from the
sensors, so that they can be read (and tested) without a daemon.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from events.inbox import (
    Change,
    EventState,
    Inbox,
    PostgresInbox,
    SqliteInbox,
    StoredEvent,
    inbox_location,
    open_inbox,
)

BATCH_TAG = "hub/batch"
TRIGGER = "event"
OPEN_STATES = ("batched", "launched")
# The cursor never passes an event received this recently: with the inbox on PostgreSQL two
# receivers' transactions may commit out of sequence order, and an event whose sequence
# number is below one already read would otherwise never be read. Re-reading costs nothing:
# the query asks only for events still `received`.
SETTLE_SECONDS = 60.0


def batch_id(org_id: str, first_seq: int, last_seq: int) -> str:
    """The batch id (the contract): also the run's ``run_key`` and its ``hub/batch`` tag."""
    return f"{org_id}:events:{first_seq}-{last_seq}"


def event_inbox(home: Path) -> SqliteInbox | PostgresInbox:
    """The hub's inbox (``HUB_EVENTS_INBOX`` or ``<HUB_HOME>/events/inbox.sqlite3``).

    One object per location and process: the sensors ask every few seconds, and opening an
    inbox runs its schema statements in a write transaction the receiver would wait on.
    """
    return _open(inbox_location(home))


@functools.lru_cache(maxsize=8)
def _open(location: str) -> SqliteInbox | PostgresInbox:
    return open_inbox(location)


@dataclass
class BatchPlan:
    """What one tick does with the new events, per member."""

    batches: dict[str, list[StoredEvent]] = field(default_factory=dict)
    """Members whose events become one batch (one run) now, oldest event first."""
    waiting: dict[str, tuple[list[int], str]] = field(default_factory=dict)
    """Members whose events stay ``received`` for a later tick: (seqs, why)."""
    dropped: dict[str, tuple[list[int], str]] = field(default_factory=dict)
    """Members whose events can never be loaded (the member is gone): (seqs, why)."""


def plan_batches(
    events: Sequence[StoredEvent],
    *,
    loadable: Mapping[str, str],
    known: Iterable[str],
    invalid: Iterable[str],
    partitions: Iterable[str],
    queued: Iterable[str],
) -> BatchPlan:
    """Group new events by member and decide, per member, batch now, wait, or drop.

    - A valid member with a partition batches now, unless a run of its last batch is still
      queued: then its events wait and join the next batch (one queued run per member at
      most, however fast events come).
    - A valid member without a partition yet waits (the ``member_files`` sensor adds it).
    - A member whose file is invalid waits: its partition and last good data are kept, and
      once the file is fixed the events are loaded.
    - A member whose file is gone, or whose connector the hub does not load, is dropped: the
      events are marked failed with the reason, as nothing could ever load them.
    """
    known, invalid = set(known), set(invalid)
    partitions, queued = set(partitions), set(queued)
    by_member: dict[str, list[StoredEvent]] = {}
    for event in events:
        by_member.setdefault(event.org_id, []).append(event)
    plan = BatchPlan()
    for org, member_events in sorted(by_member.items()):
        seqs = [e.seq for e in member_events]
        if org in loadable:
            if org not in partitions:
                plan.waiting[org] = (seqs, "no partition yet (the member_files sensor adds it)")
            elif org in queued:
                plan.waiting[org] = (seqs, "its last batch's run has not started yet")
            else:
                plan.batches[org] = member_events
        elif org in invalid:
            plan.waiting[org] = (seqs, "its member file is invalid (see `hub members`)")
        elif org in known:
            plan.dropped[org] = (seqs, "the hub does not load this member's connector")
        else:
            plan.dropped[org] = (seqs, "no member file: the member has left the hub")
    return plan


def next_cursor(
    previous: int, events: Sequence[StoredEvent], plan: BatchPlan, now: float | None = None
) -> int:
    """The highest sequence number every event up to which is dealt with.

    It stops below the first event left waiting and below events younger than
    ``SETTLE_SECONDS`` (see there); handled events above it are not read again anyway.
    """
    now = time.time() if now is None else now
    waiting = [s for seqs, _ in plan.waiting.values() for s in seqs]
    cursor = previous
    for event in events:  # oldest first
        if (waiting and event.seq >= min(waiting)) or event.received_at > now - SETTLE_SECONDS:
            break
        cursor = event.seq
    return cursor


def batch_changes(home: Path, bid: str) -> list[Change]:
    """Every change the events of batch ``bid`` reported, oldest first."""
    return [change for event in event_inbox(home).batch(bid) for change in event.changes]


_FINISHED: dict[dg.DagsterRunStatus, EventState] = {
    dg.DagsterRunStatus.SUCCESS: "succeeded",
    dg.DagsterRunStatus.FAILURE: "failed",
    dg.DagsterRunStatus.CANCELED: "failed",
}
_RUNNING = {dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING}


def latest_run(instance: dg.DagsterInstance, bid: str) -> dg.DagsterRun | None:
    """The newest run of batch ``bid`` (a retry of a failed run is newer than it)."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={BATCH_TAG: bid}), limit=1)
    return runs[0] if runs else None


def sync_batch(inbox: Inbox, instance: dg.DagsterInstance, bid: str) -> str | None:
    """Set batch ``bid``'s state from its newest run's status; the state, None if no run.

    Always from the run's status now, never from the event that prompted the call: the
    run status sensors may tick in any order (a short run's success seen before its start),
    and the inbox sensor follows open batches too, so each call must come to the same
    answer. A queued run leaves the batch ``batched`` (with the run id known).
    """
    run = latest_run(instance, bid)
    if run is None:
        return None
    if run.status in _FINISHED:
        state = _FINISHED[run.status]
        detail = failure_reason(instance, run) if state == "failed" else None
        inbox.mark_batch(bid, state, run_id=run.run_id, detail=detail)
        return state
    if run.status in _RUNNING:
        inbox.mark_batch(bid, "launched", run_id=run.run_id)
        return "launched"
    inbox.mark_batch(bid, "batched", run_id=run.run_id)
    return "batched"


def failure_reason(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str:
    """Why a batch's run failed, in words a member can read.

    Only a ``dg.Failure``'s description is shown (the hub writes those for people: a held
    load, a refused credential, never a record's values); any other error is named by its
    run, where an operator finds the details.
    """
    if run.status == dg.DagsterRunStatus.CANCELED:
        return f"run {run.run_id[:8]} was cancelled"
    records = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE, limit=5
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        data = event.step_failure_data if event is not None else None
        failure = data.user_failure_data if data is not None else None
        if failure is not None and failure.description:
            return failure.description
    return f"run {run.run_id[:8]} failed; the Dagster UI shows why"
