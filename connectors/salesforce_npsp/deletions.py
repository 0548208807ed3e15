"""Records deleted for good, which neither ``queryAll`` nor the delete log may still show.

Salesforce forgets deletions: a record whose recycle bin was emptied (or that was hard
deleted) leaves ``queryAll``, and the delete log behind ``getDeleted`` keeps an entry for 15
days at most, less when its background purge trims a large log. ``earliestDateAvailable``
is Salesforce's word that the log no longer reaches back to a given time. When it is later
than where the last run's window ended, when the window is older than the log keeps, on a
full read and every ``reconcile_days``, the loaded ids are compared with the ids Salesforce
still lists, and the missing ones become tombstones.

A short listing is not a deletion on one run's word: lost sharing, a profile or permission
set change hide records the same way. A comparison that would mark more than
``max_deleted_share`` of an object's loaded records deleted (at least
``MIN_DELETIONS_ALLOWED`` always may be), or an empty listing, deletes nothing and holds the
member (connectors/holds.py) until a run lists them again or a person raises the share.
Counts only: never an id or a value in a reason, a log line or the state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from connectors.holds import hold, lift

log = logging.getLogger(__name__)

# Hold name and resource-state flag: a held comparison is made again on every run.
HELD_DELETIONS = "held_deletions"
RECONCILE_PENDING = "reconcile_pending"
LAST_RECONCILED = "last_reconciled"
MIN_DELETIONS_ALLOWED = 10
# The delete log keeps entries for 15 days; getDeleted refuses a start over 30 days back.
DELETE_LOG_DAYS = 15

FIX = (
    "Salesforce stopped listing more records than connector.max_deleted_share allows, which "
    "a change to the integration user's sharing, profile or permission sets also causes. "
    "Check its access first; if the records were deleted on purpose, set "
    "connector.max_deleted_share: 1 for one run."
)


def loaded_live_ids(table: str) -> set[str] | None:
    """Ids the raw ``table`` holds as not deleted; None before the table exists.

    Read from the destination rather than kept in state: the raw table is what the hub
    believes, and an org's ids would make the state file megabytes.
    """
    pipeline = dlt.current.pipeline()
    try:
        with pipeline.sql_client() as client:
            name = client.make_qualified_table_name(table)
            sql = f"SELECT id FROM {name} WHERE NOT COALESCE(is_deleted, FALSE)"
            rows = client.execute_sql(sql)
    except DatabaseUndefinedRelation:
        return None
    return {str(r[0]) for r in rows or []}


def reconcile_due(state: dict[str, Any], now: datetime, every_days: int | None) -> bool:
    """Whether this run lists the object's ids: a held comparison, or the period is up."""
    if state.get(RECONCILE_PENDING):
        return True
    if every_days is None:
        return False
    last = state.get(LAST_RECONCILED)
    return last is None or now - datetime.fromisoformat(last) >= timedelta(days=every_days)


def guard(
    resource: str,
    vanished: list[str],
    loaded: int,
    listed: int,
    max_share: float,
    state: dict[str, Any],
    now: datetime,
) -> list[str]:
    """The ids this run may mark deleted: all of ``vanished``, or none (and a hold)."""
    allowed = max(MIN_DELETIONS_ALLOWED, int(max_share * loaded))
    empty = listed == 0 and loaded > 0 and max_share < 1
    if vanished and (empty or len(vanished) > allowed):
        why = "Salesforce listed none" if empty else "more than max_deleted_share"
        hold(
            state,
            HELD_DELETIONS,
            f"{len(vanished)} of {loaded} loaded records are no longer listed by Salesforce "
            f"({why}); none is marked deleted",
            FIX,
        )
        state[RECONCILE_PENDING] = True
        log.warning(
            "%s: %d of %d loaded records are no longer listed by Salesforce (%s); none is "
            "marked deleted on one run's word",
            resource,
            len(vanished),
            loaded,
            why,
        )
        return []
    lift(state, HELD_DELETIONS)
    state.pop(RECONCILE_PENDING, None)
    state[LAST_RECONCILED] = now.isoformat(timespec="seconds")
    return vanished


def tombstones(ids: Iterable[str], stamp: str) -> list[dict[str, Any]]:
    """Rows that replace a vanished record's on merge: its id, deleted, nothing else."""
    return [{"Id": i, "IsDeleted": True, "SystemModstamp": stamp} for i in sorted(ids)]
