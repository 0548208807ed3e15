"""What `hub events` shows: each member's recent events and what became of them.

For a member to see that a change arrived and what the hub did with it: received, refused
and why, coalesced into which batch, its run launched, succeeded or failed (and why), and
how the load read the records. Never a payload: the inbox keeps none, and record ids are
counted here, not listed. Reading the inbox only; no Dagster import (it answers at once).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from events.inbox import BatchSummary, Rejection, StoredEvent, inbox_location, open_inbox


@dataclass(frozen=True)
class EventGroup:
    """Consecutive events with the same fate: one batch, or waiting together."""

    org_id: str
    events: tuple[StoredEvent, ...]

    @property
    def newest(self) -> StoredEvent:
        return self.events[0]


def _when(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


def group_events(events: Sequence[StoredEvent]) -> list[EventGroup]:
    """Newest-first events of one member, consecutive ones of one batch (or all waiting)
    taken together: a burst of a hundred is one line, as it was one run."""
    groups: list[list[StoredEvent]] = []
    for event in events:
        last = groups[-1][-1] if groups else None
        same = last is not None and (last.batch_id, last.state) == (event.batch_id, event.state)
        if same:
            groups[-1].append(event)
        else:
            groups.append([event])
    return [EventGroup(g[0].org_id, tuple(g)) for g in groups]


def changes_summary(events: Sequence[StoredEvent]) -> str:
    """What the events said changed, ids counted: ``Contact update: 3 records``."""
    ids: dict[tuple[str, str], set[str]] = {}
    for event in events:
        for change in event.changes:
            key = (change.entity or "anything", change.action)
            ids.setdefault(key, set()).update(change.record_ids)
    if not ids:
        return "something changed"
    parts = []
    for (entity, action), found in sorted(ids.items()):
        if action in ("gap", "overflow"):
            parts.append(f"{entity} {action} (all reloaded)")
        elif found:
            parts.append(f"{entity} {action}: {len(found)} record{'s' if len(found) > 1 else ''}")
        else:
            parts.append(f"{entity} {action}")
    return "; ".join(parts)


def fate(group: EventGroup) -> str:
    """What became of the events, in a sentence."""
    event = group.newest
    run = f"run {event.run_id[:8]}" if event.run_id else "its run"
    if event.state == "received":
        return "received; a load is requested within seconds"
    if event.state == "batched":
        queued = f", {run} queued" if event.run_id else ", load requested"
        return f"coalesced into batch {event.batch_id}{queued}"
    if event.state == "launched":
        return f"batch {event.batch_id}: {run} started"
    if event.state == "succeeded":
        return f"batch {event.batch_id}: {run} succeeded"
    return f"batch {event.batch_id}: {run if event.run_id else 'not loaded'} failed"


def events_table(
    org_id: str, events: Sequence[StoredEvent], batches: Mapping[str, BatchSummary] | None = None
) -> Table:
    """One member's recent events, newest first; ``batches`` give a whole batch's size and
    time span where ``--limit`` cut it."""
    table = Table(title=f"Events for {org_id} (newest first)", title_justify="left")
    for column in ("received (UTC)", "events", "what changed", "what became of them", "note"):
        table.add_column(column, overflow="fold")
    for group in group_events(events):
        last = group.newest
        first_at, last_at, count = group.events[-1].received_at, last.received_at, len(group.events)
        summary = (batches or {}).get(last.batch_id or "")
        if summary is not None:
            first_at, last_at, count = summary.first_received, summary.last_received, summary.events
        when = _when(last_at)
        if _when(first_at) != when:
            when = f"{_when(first_at)} – {when[11:]}"
        note = last.detail or ""
        style = "red" if last.state == "failed" else None
        table.add_row(
            when,
            str(count),
            escape(changes_summary(group.events)),
            Text(fate(group), style=style or ""),
            escape(note),
        )
    return table


def rejections_table(org_id: str, rejected: Sequence[Rejection]) -> Table:
    """Requests the receiver refused for this member: nothing of them was queued."""
    table = Table(
        title=f"Refused requests for {org_id} (newest first; nothing of them was queued)",
        title_justify="left",
    )
    for column in ("received (UTC)", "status", "why", "event id"):
        table.add_column(column, overflow="fold")
    for item in rejected:
        table.add_row(
            _when(item.received_at),
            str(item.status),
            escape(item.reason),
            escape((item.event_id or "")[:60]),
        )
    return table


def report(home: Path, org_id: str | None, limit: int) -> tuple[RenderableType, bool]:
    """The whole answer for ``hub events [ORG] --limit N``, and whether any event was found."""
    location = inbox_location(home)
    if "://" not in location and not Path(location).exists():
        return Text(f"No events received yet (the inbox would be {location})."), False
    inbox = open_inbox(location)
    events = inbox.recent(org_id, limit=limit)
    rejected = inbox.rejections(org_id, limit=limit)
    members = sorted({e.org_id for e in events} | {r.org_id for r in rejected})
    if not members:
        whose = f" for {org_id}" if org_id else ""
        return Text(f"No events{whose} in the inbox ({location})."), False
    parts: list[RenderableType] = []
    for member in members:
        mine = [e for e in events if e.org_id == member]
        refused = [r for r in rejected if r.org_id == member]
        if mine:
            batches = {b.batch_id: b for b in inbox.batches(member, limit=limit)}
            parts.append(events_table(member, mine, batches))
        if refused:
            parts.append(rejections_table(member, refused))
    return Group(*parts), True
