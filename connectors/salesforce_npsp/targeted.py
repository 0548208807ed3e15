"""Targeted reads: load just the records a Salesforce event named, by id.

A Change Data Capture event or an Outbound Message names the records that changed. Reading
them (``SELECT ... WHERE Id IN (...)`` through ``queryAll``) costs a request or two, where
the incremental window costs one per object at least and reads everything changed since the
last load. The rows are those a window read would bring (same fields, typing, hidden-field
checks and unreadable-value notes: the caller in source.py shares them), merged on ``Id``.

What it leaves alone, so nothing is lost: the incremental cursor, the delete-log cursor and
the reconciliation dates. The next window read (the nightly refresh, or any event that does
not say which records) reads everything changed since the last window, these records too.

When the plan is a window read instead (``plan_targets`` returns None with why): a gap or
overflow event (Salesforce lost track), a change without ids, an id that is not a
Salesforce id, or an entity the member's connector does not load.

Deletions: ``queryAll`` still returns a record in the recycle bin, with ``IsDeleted`` true,
and it merges as a window read's would (personal fields blanked). A record a delete event
names that ``queryAll`` no longer returns (hard deleted, or the bin emptied) becomes a
tombstone, as the id comparison's vanished records do (deletions.py), and under the same
guard: more than ``max_deleted_share`` of the object's loaded records on one run's word
marks none deleted and holds the member until a comparison of ids decides.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from connectors.holds import hold
from connectors.salesforce_npsp.deletions import (
    FIX,
    HELD_DELETIONS,
    MIN_DELETIONS_ALLOWED,
    RECONCILE_PENDING,
    loaded_live_ids,
    tombstones,
)
from connectors.salesforce_npsp.ids import id18

log = logging.getLogger(__name__)

# The WHERE clause's share of the URL limit (max_url_length): the rest is the SELECT list,
# which query_records splits further if it must.
WHERE_SHARE = 0.5
# Past this many named records a window read costs fewer requests (about 280 ids fit one
# query under the default URL limit; a window read pages 2,000 records per request).
MAX_TARGETED_IDS = 5_000


class ChangeLike(Protocol):
    """What an event's change says (events.inbox.Change), without importing the receiver."""

    entity: str | None
    action: str
    record_ids: tuple[str, ...]


@dataclass(frozen=True)
class ObjectTargets:
    """The ids of one object a run reads; ``deleted`` are those an event says were deleted."""

    ids: tuple[str, ...]
    deleted: frozenset[str] = frozenset()


def plan_targets(
    changes: Iterable[ChangeLike], sobjects: Sequence[str]
) -> tuple[dict[str, ObjectTargets] | None, str]:
    """Per object (API name as the connector reads it), the ids to read; or None and why the
    whole window is read instead."""
    names = {s.lower(): s for s in sobjects}
    ids: dict[str, dict[str, None]] = {}
    deleted: dict[str, set[str]] = {}
    count = 0
    for change in changes:
        count += 1
        if change.action in ("gap", "overflow"):
            return None, f"a {change.action} event: Salesforce lost track of what changed"
        if change.entity is None or not change.record_ids:
            return None, "an event did not say which records changed"
        sobject = names.get(change.entity.lower())
        if sobject is None:
            return None, f"an event named {change.entity[:80]!r}, which this member does not load"
        try:
            named = [id18(i) for i in change.record_ids]
        except ValueError:
            return None, "an event named a record by something other than a Salesforce id"
        for record_id in named:
            ids.setdefault(sobject, {})[record_id] = None
            if change.action == "delete":
                deleted.setdefault(sobject, set()).add(record_id)
    if not count:
        return None, "the batch holds no change"
    total = sum(len(found) for found in ids.values())
    if total > MAX_TARGETED_IDS:
        return None, f"events named {total} records, more than a window read costs"
    targets = {
        sobject: ObjectTargets(tuple(sorted(found)), frozenset(deleted.get(sobject, ())))
        for sobject, found in ids.items()
    }
    what = ", ".join(f"{len(t.ids)} {s}" for s, t in sorted(targets.items()))
    return targets, f"{total} record(s) read by id ({what})"


def _quoted_length(record_id: str) -> int:
    """How long ``'<id>', `` is once the query string is URL-encoded."""
    return len(httpx.URL("", params={"q": f"'{record_id}', "}).raw_path) - len("?q=")


def id_chunks(ids: Sequence[str], budget: int) -> Iterator[list[str]]:
    """Consecutive runs of ``ids`` whose encoded ``IN (...)`` list fits ``budget`` bytes."""
    chunk: list[str] = []
    used = 0
    for record_id in ids:
        size = _quoted_length(record_id)
        if chunk and used + size > budget:
            yield chunk
            chunk, used = [], 0
        chunk.append(record_id)
        used += size
    if chunk:
        yield chunk


def in_clause(ids: Sequence[str]) -> str:
    """``Id IN ('a', 'b')``: the ids are checked Salesforce ids (``id18``), nothing else."""
    return "Id IN (" + ", ".join(f"'{i}'" for i in ids) + ")"


def targeted_pages(
    client: Any, sobject: str, fields: Sequence[str], targets: ObjectTargets
) -> Iterator[list[dict[str, Any]]]:
    """Query pages of the named records, deleted ones included (``queryAll``), in chunks of
    ids whose WHERE clause takes at most ``WHERE_SHARE`` of the URL limit."""
    budget = int(client.settings.max_url_length * WHERE_SHARE)
    for chunk in id_chunks(targets.ids, budget):
        yield from client.query_records(
            sobject, list(fields), in_clause(chunk), include_deleted=True
        )


def deletions_to_apply(
    resource: str,
    targets: ObjectTargets,
    seen: set[str],
    max_share: float,
    state: dict[str, Any],
    stamp: datetime | None = None,
) -> list[dict[str, Any]]:
    """Tombstones for loaded live records a delete event named that ``queryAll`` no longer
    returns, or none (and a hold) when they are more than the guard allows.

    Unlike ``deletions.guard`` this never lifts a hold nor dates a reconciliation: it saw
    only the ids the events named, not Salesforce's whole listing.
    """
    missing = sorted(targets.deleted - seen)
    if not missing:
        return []
    loaded = loaded_live_ids(resource) or set()
    vanished = [i for i in missing if i in loaded]
    if not vanished:
        return []
    allowed = max(MIN_DELETIONS_ALLOWED, int(max_share * len(loaded)))
    if len(vanished) > allowed:
        hold(
            state,
            HELD_DELETIONS,
            f"events said {len(vanished)} of {len(loaded)} loaded records were deleted for "
            "good (more than max_deleted_share); none is marked deleted",
            FIX,
        )
        state[RECONCILE_PENDING] = True  # the next window read compares every id
        log.warning(
            "%s: events named %d of %d loaded records as deleted for good; none marked "
            "deleted on one run's word",
            resource,
            len(vanished),
            len(loaded),
        )
        return []
    when = (stamp or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return tombstones(vanished, when)
