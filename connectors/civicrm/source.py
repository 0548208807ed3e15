"""The dlt source for members on CiviCRM (APIv4 over REST).

Why it reads the way it does:
- APIv4 ``get`` has no default limit, and offset paging drifts when rows are inserted during
  a run. Every read therefore pages by keyset in a stable order: ``id > last ORDER BY id``
  for full reads, ``(modified_date, id) > (last_md, last_id)`` for incremental ones.
- Contact, Activity and Case are incremental on ``modified_date``: the cursor is the newest
  ``modified_date`` seen, and each run starts ``lookback_seconds`` before it because CiviCRM
  timestamps have one-second resolution, are written in the site's local time and commit
  late. Re-reading is harmless: every table merges on ``id``.
- Email, Phone and Address have no ``modified_date``, but a change to one bumps its contact's.
  They are read for the contacts that changed; CaseContact and ActivityContact likewise for
  the cases and activities that changed. Each is paged by its own id, filtered on its
  parent's cursor window through APIv4's implicit join (``activity_id.modified_date >=
  since``), which also brings the parent's version and trash flag: one keyset pager, not a
  request per page of parent ids with an ``IN`` list (issue #19: 567,000 activity roles took
  122 s that way). The first run reads every child. A table's very first load appends (the
  table is new); every later one merges. These tables merge by parent as well as by id
  (dlt's delete-insert with a ``merge_key``): re-reading a parent replaces the children it
  had, so an e-mail deleted in CiviCRM is gone after the next run, not after the next id
  reconciliation. A parent left with no children is written as one tombstone row (id = minus
  the parent id, flagged deleted) so that its old children are still cleared.
- Children can change without their parent: a contact merge moves activity and case roles,
  e-mails, phones and addresses to the kept contact by UPDATE (CRM_Dedupe_Merger), touching
  neither the activity nor the case, and none of these rows has a ``modified_date`` of its
  own. The periodic audit (every ``reconcile_every_runs`` runs, with the id comparison)
  lists each child table's own fields and compares a digest per block of ids with the ones
  kept in state; the parents of changed blocks have all their children re-read. ``hub run
  --full <org>`` (``full_reload``) re-reads everything at once.
- Contribution has ``modified_date`` only from CiviCRM 6.9. The resource asks ``getFields``
  (the authority, whatever the version string says): with the field it is incremental like
  Activity; without it every run re-reads all contributions by id and reconciles deletions.
- Trashed contacts (``is_deleted``) arrive as ordinary rows with ``is_deleted = true`` and
  no personal field; their e-mail, phone and address rows load with the personal column
  blank too (ids kept), because those rows are not trashed themselves.
- Hard deletes leave no trace in the API. A person deleted for good must leave the hub on the
  next run (issue #18), so every run compares a one-request count of the contacts
  (``select: ['row_count']``, trashed included) with the number of contact ids the hub holds
  (kept as compact ranges in dlt state, plus the ids read in this run: any contact created
  since the last run has been read, so a delete and a create in one interval still show as a
  difference). Only when they differ does it look for the vanished ids, and it narrows down
  where before listing any: listing all 200,000 ids costs a run about as much as the rest of
  its reconciliation put together (and on a real site PHP formats every row), while a count
  over an id range is one cheap ``COUNT(*)``. The held ids are cut into up to ``FANOUT``
  ranges holding equally many of them; all ranges of one level are counted in ONE request
  (APIv4's multi-call form, see ``client.batch``); a range whose count equals the ids held in
  it lost nothing (the same reasoning as the whole count), and only the differing ones are cut
  again, until they hold at most ``LEAF`` ids; then only those ranges' ids are listed. A
  single delete among 200,000 contacts costs four requests and about 800 ids instead of four
  pages of 50,000. When the ids missing from the count are too many for narrowing to pay
  (deletions everywhere, or a lost permission hiding most rows), or the differing ranges hold
  over half of all ids, it lists every id as before. The answers are shared, once per run,
  by the contact table and the tables hanging off contacts. A vanished contact is loaded as
  a marker row (``is_deleted`` and ``deleted_in_source`` true, every
  other column null), and its e-mail, phone and address rows are cleared in the same load
  by a tombstone per table (see below). Every table's ids are also listed and compared every
  ``reconcile_every_runs`` runs and on every full read (a deleted activity or case bumps
  nothing). That periodic comparison stays a full listing on purpose: it is the check that
  does not trust counts (a delete and a record the cursor never reached cancel out in one).
- An empty or short answer is not a deletion: CiviCRM answers a lost permission or ACL with
  fewer rows, not an error. An empty listing, or one that would mark more than
  ``max_deleted_share`` of a table's ids deleted (and more than ``MIN_DELETIONS_ALLOWED``),
  deletes nothing; the run warns (counts only) and keeps the ids until a person checks.
- State lives in dlt and is committed only with a completed extract, so a run that fails
  half-way resumes from the previous cursor: nothing lost, and merge removes duplicates.
- A field the API user may not see is not an error in CiviCRM either: it is left out of
  results, which would load consent and outcome statuses blank. Every selected field must
  be listed by ``getFields`` before any row is read, and be in every page; otherwise the
  load fails naming field and permission, writing nothing (see fields.py).

Building the source does no network I/O; each resource opens its own client when it runs.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import operator
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import dlt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.destination import AnyDestination

from connectors.civicrm.client import MAX_BATCH_CALLS, CiviCRMClient
from connectors.civicrm.fields import FieldCheck, require_fields
from connectors.civicrm.held import FIX, HELD, HELD_PARENTS
from connectors.civicrm.settings import CiviCRMSettings
from connectors.deadline import LoadDeadline
from connectors.first_load import nothing_to_merge
from connectors.holds import hold, is_held, lift
from connectors.raw_pipeline import member_pipeline

log = logging.getLogger(__name__)

SOURCE_NAME = "civicrm"
# Resource-state key: the cursor a held table re-reads from on every run until the hold is
# lifted (see connectors/holds.py), so nothing CiviCRM hid while held stays behind.
RESYNC = "resync_from"
# Resource-state key: the APIv4 fields the table's loaded rows were read with.
FIELDS_READ = "fields_read"
TS_FORMAT = "%Y-%m-%d %H:%M:%S"
# A run may always mark this many ids deleted, whatever max_deleted_share says: a small site
# deleting a handful of people must not need a person to confirm it.
MIN_DELETIONS_ALLOWED = 10
# Narrowing down hard deletes: a differing id range is cut into this many ranges of equal
# held ids, each counted (one level = one batched request), until it holds at most LEAF ids,
# which are listed. 16 x 16 x 781 covers 200,000 contacts in two levels; a 2,000-id listing
# costs about what one more level of counts does on a real site.
FANOUT = 16
LEAF = 2_000
# Child tables keep a fingerprint per block of this many ids (state key DIGESTS): the periodic
# audit compares them to find rows that changed without their parent (a contact merge).
# 567,000 activity roles make about 600 blocks: a few kilobytes of state.
DIGEST_BLOCK = 1_000
# Pages are handed to dlt in items of at least this many rows (see ``_batched``).
ITEM_ROWS = 20_000
DIGESTS = "block_digests"
# When the audit finds more than this share of a child table's rows in changed blocks (first
# audit after an upgrade, a mass merge), one plain re-read of the table beats per-parent reads.
REREAD_ALL_SHARE = 0.25


@dataclass(frozen=True)
class EntitySpec:
    """One raw table: which APIv4 entity feeds it and how it is paged.

    ``fields`` maps APIv4 field names (option suffixes allowed) to raw column names.
    ``parent`` is (parent spec key, foreign key field) for tables read per changed parent.
    """

    key: str
    entity: str
    fields: dict[str, str]
    types: dict[str, str]
    incremental: bool = False
    parent: tuple[str, str] | None = None
    where: tuple[tuple[Any, ...], ...] = ()
    detect_modified_date: bool = False
    census: bool = False  # checked for hard deletes on every run (people), not periodically

    @property
    def table(self) -> str:
        return f"{SOURCE_NAME}__{self.key}"


def entity_specs(settings: CiviCRMSettings) -> dict[str, EntitySpec]:
    """The entities read, with member-specific custom fields added from the settings."""
    contact_fields = {
        "id": "id",
        "contact_type": "contact_type",
        "first_name": "first_name",
        "last_name": "last_name",
        "birth_date": "birth_date",
        "is_deleted": "is_deleted",
        "modified_date": "modified_date",
    }
    contact_types = {"birth_date": "date", "is_deleted": "bool", "modified_date": "timestamp"}
    if settings.consent_field:
        contact_fields[settings.consent_field] = "consent_to_share"
        contact_types["consent_to_share"] = "text"
    activity_fields = {
        "id": "id",
        "activity_type_id:name": "activity_type",
        "activity_date_time": "activity_date_time",
        "status_id:name": "status",
        "duration": "duration",
        "case_id": "case_id",
        "is_deleted": "is_deleted",
        "modified_date": "modified_date",
    }
    activity_types = {
        "activity_date_time": "timestamp",
        "duration": "bigint",
        "case_id": "bigint",
        "is_deleted": "bool",
        "modified_date": "timestamp",
    }
    outcome = settings.outcome_fields
    if outcome is not None:
        activity_fields[outcome.outcome] = "outcome"
        activity_types["outcome"] = "text"
        if outcome.status:
            activity_fields[outcome.status] = "outcome_status"
            activity_types["outcome_status"] = "text"
        if outcome.value:
            activity_fields[outcome.value] = "outcome_value"
            activity_types["outcome_value"] = "text"
    trashed = (
        ("is_deleted", "IN", [False, True])
        if settings.include_trashed
        else ("is_deleted", "=", False)
    )
    child_types = {"contact_id": "bigint", "is_primary": "bool"}
    specs = [
        EntitySpec(
            "contact",
            "Contact",
            contact_fields,
            contact_types,
            incremental=True,
            where=(("contact_type", "=", "Individual"), trashed),
            census=True,
        ),
        EntitySpec(
            "email",
            "Email",
            {"id": "id", "contact_id": "contact_id", "is_primary": "is_primary", "email": "email"},
            child_types,
            parent=("contact", "contact_id"),
        ),
        EntitySpec(
            "phone",
            "Phone",
            {"id": "id", "contact_id": "contact_id", "is_primary": "is_primary", "phone": "phone"},
            child_types,
            parent=("contact", "contact_id"),
        ),
        EntitySpec(
            "address",
            "Address",
            {
                "id": "id",
                "contact_id": "contact_id",
                "is_primary": "is_primary",
                "postal_code": "postal_code",
            },
            child_types,
            parent=("contact", "contact_id"),
        ),
        EntitySpec(
            "case",
            "Case",
            {
                "id": "id",
                "case_type_id:name": "case_type",
                "status_id:name": "status",
                "start_date": "start_date",
                "end_date": "end_date",
                "is_deleted": "is_deleted",
                "modified_date": "modified_date",
            },
            {
                "start_date": "date",
                "end_date": "date",
                "is_deleted": "bool",
                "modified_date": "timestamp",
            },
            incremental=True,
        ),
        EntitySpec(
            "case_contact",
            "CaseContact",
            {"id": "id", "case_id": "case_id", "contact_id": "contact_id"},
            {"case_id": "bigint", "contact_id": "bigint"},
            parent=("case", "case_id"),
        ),
        EntitySpec(
            "activity",
            "Activity",
            activity_fields,
            activity_types,
            incremental=True,
        ),
        EntitySpec(
            "activity_contact",
            "ActivityContact",
            {
                "id": "id",
                "activity_id": "activity_id",
                "contact_id": "contact_id",
                "record_type_id:name": "record_type",
            },
            {"activity_id": "bigint", "contact_id": "bigint"},
            parent=("activity", "activity_id"),
        ),
        EntitySpec(
            "contribution",
            "Contribution",
            {
                "id": "id",
                "contact_id": "contact_id",
                "total_amount": "total_amount",
                "receive_date": "receive_date",
                "contribution_status_id:name": "contribution_status",
            },
            {
                "contact_id": "bigint",
                "total_amount": "decimal",
                "receive_date": "timestamp",
                "modified_date": "timestamp",
            },
            incremental=True,
            detect_modified_date=True,
        ),
    ]
    return {s.key: s for s in specs}


# Every raw table has these, so deletions read the same way everywhere.
DELETION_COLUMNS = {"is_deleted": "bool", "deleted_in_source": "bool"}
# Raw columns that describe a person, blanked on rows that are trashed or deleted.
PERSONAL_COLUMNS = frozenset(
    {
        "first_name",
        "last_name",
        "birth_date",
        "email",
        "phone",
        "postal_code",
        "street_address",
        "consent_to_share",
    }
)


def selected_fields(settings: CiviCRMSettings) -> dict[str, list[str]]:
    """Entity -> every field a load of ``settings.entities`` selects (parents' included), as
    APIv4 spells them; each must come back (see fields.py). Contribution's modified_date is
    left out: it is selected only where ``getFields`` lists it."""
    specs = entity_specs(settings)
    wanted: dict[str, list[str]] = {}
    for key in settings.entities:
        spec = specs[key]
        wanted.setdefault(spec.entity, []).extend(spec.fields)
        if spec.parent is not None:
            parent = specs[spec.parent[0]]
            read = wanted.setdefault(parent.entity, [])
            read += ["id", "modified_date"]  # what the parent read of _entity_rows selects
            if "is_deleted" in parent.fields:
                read.append("is_deleted")
    return {entity: list(dict.fromkeys(names)) for entity, names in wanted.items()}


def resource_names(settings: CiviCRMSettings) -> list[str]:
    """The resource (and raw table) names this member's source will have."""
    specs = entity_specs(settings)
    return [specs[k].table for k in settings.entities]


class IdRanges:
    """A set of integer ids kept as sorted, disjoint ``[lo, hi]`` ranges.

    CiviCRM ids are mostly consecutive, so even 200,000 loaded ids are a handful of ranges:
    small enough to live in dlt state, where it is committed with the load.
    """

    def __init__(self, ranges: list[list[int]]) -> None:
        self.ranges = ranges  # mutated in place: it is the list stored in dlt state

    def add(self, value: int) -> None:
        r = self.ranges
        if r and r[-1][1] + 1 == value:
            r[-1][1] = value
            return
        if not r or value > r[-1][1] + 1:
            r.append([value, value])
            return
        idx = bisect.bisect_right(r, [value, float("inf")])
        if idx and r[idx - 1][1] >= value:
            return
        left = idx > 0 and r[idx - 1][1] == value - 1
        right = idx < len(r) and r[idx][0] == value + 1
        if left and right:
            r[idx - 1][1] = r[idx][1]
            del r[idx]
        elif left:
            r[idx - 1][1] = value
        elif right:
            r[idx][0] = value
        else:
            r.insert(idx, [value, value])

    def extend(self, ids: list[int]) -> None:
        """Add one page's ids: a run of consecutive new ids past the end, the usual case for
        a keyset page, costs one step instead of one per id."""
        r = self.ranges
        if ids:
            lo, hi = min(ids), max(ids)
            if hi - lo == len(set(ids)) - 1 and (not r or lo > r[-1][1]):
                if r and r[-1][1] + 1 == lo:
                    r[-1][1] = hi
                else:
                    r.append([lo, hi])
                return
        for value in ids:
            self.add(value)

    def remove(self, value: int) -> None:
        r = self.ranges
        idx = bisect.bisect_right(r, [value, float("inf")]) - 1
        if idx < 0 or r[idx][1] < value:
            return
        lo, hi = r[idx]
        pieces = [p for p in ([lo, value - 1], [value + 1, hi]) if p[0] <= p[1]]
        r[idx : idx + 1] = pieces

    def __iter__(self) -> Iterator[int]:
        for lo, hi in self.ranges:
            yield from range(lo, hi + 1)

    def __len__(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.ranges)

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int):
            return False
        idx = bisect.bisect_right(self.ranges, [value, float("inf")])
        return bool(idx) and self.ranges[idx - 1][1] >= value

    def copy(self) -> IdRanges:
        return IdRanges([list(p) for p in self.ranges])


def _shift(timestamp: str, seconds: int) -> str:
    return (datetime.strptime(timestamp, TS_FORMAT) - timedelta(seconds=seconds)).strftime(
        TS_FORMAT
    )


@dataclass
class _Reader:
    """Pages one entity with a stable order; records the newest modified_date it saw."""

    client: CiviCRMClient
    entity: str
    select: list[str]
    where: list[Any]
    page_size: int
    max_modified: str | None = None
    seen_ids: set[int] = field(default_factory=set)
    # The ids of the page last yielded, in page order (read once, for every caller).
    page_ids: list[int] = field(default_factory=list)

    def by_id(self) -> Iterator[list[dict[str, Any]]]:
        """Keyset on id: inserts during the run land after ``last`` and are read once.

        The next page is asked for (in one helper thread) as soon as this one has arrived,
        while this one is turned into Arrow and written: the server's time and the
        client's overlap instead of adding up. The requests are the same, in the same
        order, one at a time; an error in one is raised here, at that page.
        """
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="civicrm-page") as pool:
            pending = pool.submit(self._after, 0)
            while True:
                page = pending.result()
                more = len(page) >= self.page_size
                if more:
                    pending = pool.submit(self._after, int(page[-1]["id"]))
                if page:
                    self._note(page)
                    yield page
                if not more:
                    return

    def _after(self, last: int) -> list[dict[str, Any]]:
        return self.client.get(
            self.entity,
            {
                "select": self.select,
                "where": [*self.where, ["id", ">", last]],
                "orderBy": {"id": "ASC"},
                "limit": self.page_size,
            },
        ).values

    def by_modified(self, since: str) -> Iterator[list[dict[str, Any]]]:
        """Keyset on (modified_date, id) from ``since``: ties on a timestamp never skip rows."""
        after: tuple[str, int] | None = None
        while True:
            where = [*self.where, ["modified_date", ">=", since]]
            if after is not None:
                md, last_id = after
                where.append(
                    [
                        "OR",
                        [
                            ["modified_date", ">", md],
                            ["AND", [["modified_date", "=", md], ["id", ">", last_id]]],
                        ],
                    ]
                )
            result = self.client.get(
                self.entity,
                {
                    "select": self.select,
                    "where": where,
                    "orderBy": {"modified_date": "ASC", "id": "ASC"},
                    "limit": self.page_size,
                },
            )
            page = result.values
            if page:
                self._note(page)
                yield page
                after = (str(page[-1]["modified_date"]), int(page[-1]["id"]))
            if len(page) < self.page_size:
                return

    def _note(self, page: list[dict[str, Any]]) -> None:
        self.page_ids = [int(row["id"]) for row in page]
        self.seen_ids.update(self.page_ids)
        if "modified_date" in self.select:
            newest = max(filter(None, [row.get("modified_date") for row in page]), default=None)
            if newest and (self.max_modified is None or newest > self.max_modified):
                self.max_modified = str(newest)


@dataclass(frozen=True)
class _ChildJoin:
    """How a child table is read through APIv4's implicit join on its parent.

    ``activity_id.modified_date`` and ``contact_id.is_deleted`` are fields of the referenced
    record (civicrm-core's ``entity_reference``), usable in select, where and orderBy: a
    child can be paged by its own id while filtered on its parent's cursor window, and each
    row brings the parent's version and trash flag with it.
    """

    fk: str
    select: list[str]
    where: list[list[Any]]  # the parent's own filters, through the join
    version_key: str
    trashed_key: str | None

    @classmethod
    def of(cls, spec: EntitySpec, parent: EntitySpec, fields: dict[str, str]) -> _ChildJoin:
        assert spec.parent is not None
        fk = spec.parent[1]
        version_key = f"{fk}.modified_date"
        trashed_key = f"{fk}.is_deleted" if "is_deleted" in parent.fields else None
        select = [*fields, version_key, *([trashed_key] if trashed_key else [])]
        where = [[f"{fk}.{w[0]}", *w[1:]] for w in parent.where]
        return cls(fk, select, where, version_key, trashed_key)

    def versions(self, page: list[dict[str, Any]]) -> list[Any]:
        return [r.get(self.version_key) for r in page]

    def require(self, parent_entity: str, page: list[dict[str, Any]]) -> None:
        """Fail, naming the parent's field, when a page lacks a joined parent field (APIv4
        drops a field the API user may not see instead of refusing it)."""
        joined = [key for key in (self.version_key, self.trashed_key) if key]
        if page and any(key not in page[0] for key in joined):
            present = {key.split(".", 1)[1]: None for key in joined if key in page[0]}
            require_fields(parent_entity, [present], [key.split(".", 1)[1] for key in joined])

    def trashed(self, page: list[dict[str, Any]]) -> list[bool] | None:
        """Rows whose parent is trashed (they keep their ids but no personal field); None
        when there are none."""
        if self.trashed_key is None:
            return None
        flags = [bool(r.get(self.trashed_key)) for r in page]
        return flags if any(flags) else None


class _BlockDigests:
    """Fingerprints of a child table's own fields, one per block of ``DIGEST_BLOCK`` ids.

    Rows arrive in id order. ``previous`` (the digests kept in state) marks the blocks that
    changed since; the parents of their rows now are the ones to re-read. A row moved from
    one parent to another is found under its new parent: re-reading that parent's children
    replaces the row by id, which takes it off the old one.
    """

    def __init__(self, fields: dict[str, str], fk: str, previous: dict[str, str] | None) -> None:
        self.fields = list(fields)
        self._get = operator.itemgetter(*self.fields)
        self.fk = fk
        self.previous = previous
        self.digests: dict[str, str] = {}
        self.changed_parents: set[int] = set()
        self.changed_rows = 0
        self.rows = 0
        self._block: int | None = None
        self._hash = hashlib.blake2b(digest_size=8)
        self._parents: set[int] = set()
        self._count = 0

    def add(self, page: list[dict[str, Any]]) -> None:
        """Hash a page (ascending ids), a run of rows of one block at a time.

        Each run is hashed as its rows' JSON joined by commas, so how rows fall into pages
        (the full read's page size, the audit's) never changes a block's digest.
        """
        try:
            values = [self._get(r) for r in page]
        except KeyError:  # a field CiviCRM left out (hidden from the API user)
            values = [tuple(r.get(f) for f in self.fields) for r in page]
        blocks = [int(r["id"]) // DIGEST_BLOCK for r in page]
        # Without earlier digests every block counts as changed: no parent is worth noting.
        parents = [r.get(self.fk) for r in page] if self.previous is not None else []
        start, n = 0, len(page)
        while start < n:
            block = blocks[start]
            end = bisect.bisect_right(blocks, block, lo=start)
            if block != self._block:
                self._close()
                self._block, self._hash = block, hashlib.blake2b(digest_size=8)
                self._parents, self._count = set(), 0
            self._hash.update(orjson.dumps(values[start:end])[1:-1] + b",")
            if parents:
                self._parents.update(int(p) for p in parents[start:end] if p is not None)
            self._count += end - start
            start = end
        self.rows += n

    def finish(self) -> dict[str, str]:
        self._close()
        self._block = None
        return self.digests

    def _close(self) -> None:
        if self._block is None:
            return
        key = str(self._block)
        digest = self._hash.hexdigest()
        self.digests[key] = digest
        if self.previous is None or self.previous.get(key) != digest:
            self.changed_parents |= self._parents
            self.changed_rows += self._count
        self._parents = set()


def _audit_children(
    client: CiviCRMClient,
    spec: EntitySpec,
    join: _ChildJoin,
    fields: dict[str, str],
    state: dict[str, Any],
    settings: CiviCRMSettings,
    arrow: _ArrowTable,
    reread: set[int],
    known: IdRanges,
) -> Iterator[pa.Table]:
    """List every child row (own fields only), yield the children of parents whose rows
    changed without them, and return the ids CiviCRM lists (for the deletion check).

    Activity and case roles have no ``modified_date`` of their own, and a contact merge moves
    them by UPDATE without touching the activity or case (CRM_Dedupe_Merger): following the
    parents' cursor never sees it. The listing is compared block by block with the digests
    kept in state; only the parents of changed blocks are re-read (``reread``: already read
    in full in this run), all their children, since the table merges by parent.
    """
    listing = _Reader(client, spec.entity, list(fields), join.where, settings.reconcile_page_size)
    digests = _BlockDigests(fields, join.fk, state.get(DIGESTS))
    for page in listing.by_id():
        digests.add(page)
    state[DIGESTS] = digests.finish()
    live = listing.seen_ids
    todo = sorted(digests.changed_parents - reread)
    version_column = _version_column(spec)
    # (Without digests kept yet, every block counts as changed: the whole table.)
    everything = digests.changed_rows > REREAD_ALL_SHARE * max(digests.rows, 1)
    if not everything and not todo:
        return live
    if everything:
        pages = _Reader(client, spec.entity, join.select, join.where, settings.page_size).by_id()
    else:
        pages = (
            page
            for start in range(0, len(todo), settings.page_size)
            for page in _Reader(
                client,
                spec.entity,
                join.select,
                [*join.where, [join.fk, "IN", todo[start : start + settings.page_size]]],
                settings.page_size,
            ).by_id()
        )
    moved = 0
    for page in pages:
        known.extend([int(r["id"]) for r in page])
        moved += len(page)
        yield arrow.page(page, fields, {version_column: join.versions(page)}, join.trashed(page))
    log.info(
        "CiviCRM %s: %d of %d rows in blocks changed since the last audit; re-read %d rows (%s)",
        spec.table,
        digests.changed_rows,
        digests.rows,
        moved,
        "the whole table" if everything else f"the children of {len(todo)} parents",
    )
    return live


def _text(value: Any) -> str | None:
    """Custom values as CiviCRM writes them in JSON (true/false, 4.0), whatever their type."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _table_columns(spec: EntitySpec, fields: dict[str, str]) -> dict[str, str]:
    """Raw column -> dlt type, in table order: fields, version, deletion flags."""
    columns = {"id": "bigint"}
    for column in fields.values():
        columns.setdefault(column, spec.types.get(column, "text"))
    columns.setdefault(_version_column(spec), "timestamp")
    for column, kind in DELETION_COLUMNS.items():
        columns.setdefault(column, kind)
    return columns


_ARROW_TYPES = {
    "text": pa.string(),
    "bigint": pa.int64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
    "decimal": pa.decimal128(38, 9),
}


def _arrow_column(kind: str, values: list[Any]) -> pa.Array:
    """JSON values -> a typed Arrow array; CiviCRM's local timestamps stay naive."""
    if kind == "timestamp":
        return pc.strptime(_strings(values), format=TS_FORMAT, unit="us")
    if kind == "date":
        return pc.utf8_slice_codeunits(_strings(values), 0, 10).cast(pa.date32())
    if kind == "decimal":
        return pa.array(
            [None if v is None else Decimal(str(v)) for v in values], _ARROW_TYPES[kind]
        )
    if kind == "text":
        try:
            return pa.array(values, pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # custom fields: numbers, booleans
            inferred = pa.array(values)
            if pa.types.is_boolean(inferred.type) or pa.types.is_integer(inferred.type):
                return inferred.cast(pa.string())  # as _text writes them: true, false, 4
            return pa.array([_text(v) for v in values], pa.string())
    return pa.array(values, _ARROW_TYPES[kind])


def _strings(values: list[Any]) -> pa.Array:
    """Timestamps and dates as text: JSON gives strings, so Arrow converts them in C; any
    other value (a number from a custom field) goes through ``str`` first."""
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


class _ArrowTable:
    """Turns pages of row dicts into Arrow tables of one fixed schema.

    Arrow items skip dlt's row-by-row normaliser and load as Parquet where the destination
    takes it: at 200,000 activities that is the difference between seconds and minutes.
    """

    def __init__(self, columns: dict[str, str], entity: str = "") -> None:
        self.columns = columns
        self.entity = entity
        self.schema = pa.schema(
            [pa.field(c, _ARROW_TYPES[k], nullable=c != "id") for c, k in columns.items()]
        )

    def page(
        self,
        records: list[dict[str, Any]],
        fields: dict[str, str],
        extra: dict[str, list[Any]] | None = None,
        blank: list[bool] | None = None,
    ) -> pa.Table:
        """One API page (keys as APIv4 names them) as a table of raw columns.

        ``blank`` marks rows whose personal fields must not load (their parent is trashed).
        """
        # A field CiviCRM left out (a permission lost mid-run) must fail, not load blank.
        require_fields(self.entity, records, fields)
        n = len(records)
        data = {column: [r.get(api) for r in records] for api, column in fields.items()}
        data.update(extra or {})
        data["is_deleted"] = [bool(v) for v in data.get("is_deleted", [False] * n)]
        data["deleted_in_source"] = [False] * n
        # A trashed contact keeps no personal field in the hub, not even raw (issue #18).
        gone = data["is_deleted"]
        if blank is not None:
            gone = [a or b for a, b in zip(gone, blank, strict=True)]
        for column in PERSONAL_COLUMNS & set(data) if any(gone) else ():
            values = data[column]
            data[column] = [None if g else value for value, g in zip(values, gone, strict=True)]
        return self._table(data, n)

    def markers(self, ids: list[int]) -> pa.Table:
        """Deletion markers: id and flags only, every other column null."""
        n = len(ids)
        return self._table(
            {"id": ids, "is_deleted": [True] * n, "deleted_in_source": [True] * n}, n
        )

    def tombstones(
        self, parents: list[int], fk: str, version_column: str, versions: list[Any]
    ) -> pa.Table:
        """One row per re-read parent that has no children now (id = minus the parent's).

        The table merges by parent (``merge_key``), so the row makes the load delete the
        children that parent had; it is flagged deleted and the SQL downstream skips it.
        """
        n = len(parents)
        return self._table(
            {
                "id": [-p for p in parents],
                fk: parents,
                "is_deleted": [True] * n,
                "deleted_in_source": [True] * n,
                version_column: versions,
            },
            n,
        )

    def _table(self, data: dict[str, list[Any]], n: int) -> pa.Table:
        arrays = [
            _arrow_column(kind, data[column]) if column in data else pa.nulls(n, _ARROW_TYPES[kind])
            for column, kind in self.columns.items()
        ]
        return pa.Table.from_arrays(arrays, schema=self.schema)


@dataclass(frozen=True)
class _Span:
    """The ids from ``lo`` to ``hi`` (inclusive; None: open), holding ``held[start:end]``."""

    lo: int | None
    hi: int | None
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def key(self) -> tuple[int | None, int | None]:
        return self.lo, self.hi

    def bounds(self) -> list[list[Any]]:
        """The span as APIv4 ``where`` clauses (none for an open end)."""
        clauses: list[list[Any]] = []
        if self.lo is not None:
            clauses.append(["id", ">=", self.lo])
        if self.hi is not None:
            clauses.append(["id", "<=", self.hi])
        return clauses


def _split(span: _Span, held: list[int], fanout: int) -> list[_Span]:
    """Cut a span into up to ``fanout`` spans with equally many held ids, covering all of it.

    Bounds are held ids, so each piece holds at least one; the first piece keeps the span's
    lower end and the last its upper end (open for the whole: new ids beyond the highest
    held one are counted too).
    """
    k = min(fanout, span.size)
    cuts = [span.start + j * span.size // k for j in range(k + 1)]
    return [
        _Span(
            span.lo if j == 0 else held[cuts[j]],
            span.hi if j == k - 1 else held[cuts[j + 1]] - 1,
            cuts[j],
            cuts[j + 1],
        )
        for j in range(k)
    ]


def _leaf_size(size: int) -> int:
    """How many held ids a span of ``size`` has once cut down to a leaf."""
    while size > LEAF:
        size = -(-size // FANOUT)
    return size


@dataclass
class Vanishing:
    """What one search for vanished ids found, and what it cost (counts only)."""

    vanished: list[int]
    count: int  # how many records CiviCRM says match
    unheld: int = 0  # listed by CiviCRM but never loaded
    requests: int = 0
    calls: int = 0
    ids_listed: int = 0


class RangeCensus:
    """CiviCRM's answers about one entity's ids for one run, each asked at most once.

    Counts and listings are kept by id range, so the contact table and the tables hanging
    off contacts, which hold the same ids, share one narrowing instead of repeating it.
    """

    def __init__(self, entity: str, where: tuple[tuple[Any, ...], ...], page_size: int) -> None:
        self.entity = entity
        self.where = [list(w) for w in where]
        self.page_size = page_size
        self.total: int | None = None
        self.live: set[int] | None = None
        self._counts: dict[tuple[int | None, int | None], int] = {}
        self._listed: dict[tuple[int | None, int | None], set[int]] = {}
        self.requests = 0
        self.calls = 0
        self.ids_listed = 0

    def count(self, client: CiviCRMClient) -> int:
        """How many records match (``select: ['row_count']``: one request, no row fetched)."""
        if self.total is None:
            self.total = count_rows(client, self.entity, tuple(map(tuple, self.where)))
            self.requests += 1
            self.calls += 1
        return self.total

    def live_ids(self, client: CiviCRMClient) -> set[int]:
        """Every id CiviCRM lists now (``select: ['id']`` only, large keyset pages)."""
        if self.live is None:
            where = tuple(map(tuple, self.where))
            self.live = list_ids(client, self.entity, where, self.page_size)
            pages = len(self.live) // self.page_size + 1  # keyset paging ends on a short page
            self.requests += pages
            self.calls += pages
            self.ids_listed += len(self.live)
        return self.live

    def count_spans(self, client: CiviCRMClient, spans: list[_Span]) -> list[int]:
        """Each span's count, the ones not asked yet in one batched request."""
        todo = list({s.key: s for s in spans if s.key not in self._counts}.values())
        if todo:
            calls = [
                (
                    self.entity,
                    "get",
                    {"select": ["row_count"], "where": [*self.where, *s.bounds()]},
                )
                for s in todo
            ]
            for span, result in zip(todo, self._batch(client, calls), strict=True):
                matched = result.count_matched
                self._counts[span.key] = int(matched if matched is not None else result.count)
        return [self._counts[s.key] for s in spans]

    def list_spans(self, client: CiviCRMClient, spans: list[_Span]) -> list[set[int]]:
        """Each span's ids: keyset pages, all spans' next pages in one batched request."""
        if any(s.lo is None and s.hi is None for s in spans):
            live = self.live_ids(client)
            return [live for _ in spans]
        todo = {s.key: s for s in spans if s.key not in self._listed}
        found: dict[tuple[int | None, int | None], set[int]] = {k: set() for k in todo}
        after = {k: (s.lo - 1 if s.lo is not None else 0) for k, s in todo.items()}
        while after:
            keys = list(after)
            calls = [self._page_call(after[k], todo[k].hi) for k in keys]
            more: dict[tuple[int | None, int | None], int] = {}
            for key, result in zip(keys, self._batch(client, calls), strict=True):
                ids = [int(r["id"]) for r in result.values]
                found[key].update(ids)
                self.ids_listed += len(ids)
                if len(ids) >= self.page_size:
                    more[key] = ids[-1]
            after = more
        self._listed.update(found)
        return [self._listed[s.key] for s in spans]

    def vanished(self, client: CiviCRMClient, before: IdRanges, seen: set[int]) -> Vanishing:
        """Ids in ``before`` that CiviCRM no longer has, found by narrowing (module docstring).

        Every record created since the last run has been read in this one (it is in
        ``seen``), so CiviCRM's count over any id range equals the ids held in it (``before``
        and ``seen``) exactly when none of them vanished: a delete and a create in one
        interval still differ by one.
        """
        held_ranges = before.copy()
        for i in seen:
            held_ranges.add(i)
        count = self.count(client)
        if count == len(held_ranges):
            return self._found([], count)
        held = list(held_ranges)
        if count == 0:  # nothing to list: every held id is missing (the guard decides)
            return self._found([i for i in held if i not in seen], count)
        spans = self._narrow(client, held, count)
        vanished: list[int] = []
        unheld = 0
        for span, live in zip(spans, self.list_spans(client, spans), strict=True):
            inside = held[span.start : span.end]
            vanished.extend(i for i in inside if i not in live and i not in seen)
            if span.lo is None and span.hi is None:
                unheld += sum(1 for i in live if i not in held_ranges)
            else:
                unheld += len(live - set(inside))
        return self._found(vanished, count, unheld)

    def _narrow(self, client: CiviCRMClient, held: list[int], count: int) -> list[_Span]:
        """The spans to list: the differing ones, cut down level by level while it pays.

        ``changes`` bounds how many leaves can differ (each missing or extra id moves one
        range's count), so ``changes`` leaves' worth of ids is the most narrowing can end up
        listing; when that is not less than what the current spans hold, another level of
        counts buys nothing.
        """
        total = len(held)
        root = _Span(None, None, 0, total)
        pending, leaves = [root], []
        changes = abs(total - count) or 1
        while True:
            leaves += [s for s in pending if s.size <= LEAF]
            pending = [s for s in pending if s.size > LEAF]
            holding = sum(s.size for s in pending)
            if not pending or changes * _leaf_size(max(s.size for s in pending)) >= holding:
                break
            children = [c for s in pending for c in _split(s, held, FANOUT)]
            counts = self.count_spans(client, children)
            differing = [(c, n) for c, n in zip(children, counts, strict=True) if n != c.size]
            changes = sum(abs(c.size - n) or 1 for c, n in differing)
            pending = [c for c, _ in differing]
        spans = sorted(leaves + pending, key=lambda s: s.start)
        if sum(s.size for s in spans) > total / 2:
            return [root]  # most of it differs: one plain listing of everything is cheaper
        return spans

    def _page_call(self, after: int, hi: int | None) -> tuple[str, str, dict[str, Any]]:
        where = [*self.where, ["id", ">", after]]
        if hi is not None:
            where.append(["id", "<=", hi])
        params = {"select": ["id"], "where": where, "orderBy": {"id": "ASC"}}
        params["limit"] = self.page_size
        return self.entity, "get", params

    def _batch(
        self, client: CiviCRMClient, calls: list[tuple[str, str, dict[str, Any]]]
    ) -> list[Any]:
        self.requests += -(-len(calls) // MAX_BATCH_CALLS)
        self.calls += len(calls)
        return client.batch(calls)

    def _found(self, vanished: list[int], count: int, unheld: int = 0) -> Vanishing:
        return Vanishing(vanished, count, unheld, self.requests, self.calls, self.ids_listed)


class _Census:
    """Which ids of one entity CiviCRM still has: one count per run, narrowing only when it
    differs (see ``RangeCensus``).

    The contact table and the tables hanging off contacts (e-mail, phone, address) all need
    to know which contacts were deleted for good, on every run; sharing the answers keeps
    that to one cheap request on most runs. A run is recognised by its dlt source-state
    object, which the resources of one extract share and the next run replaces.
    """

    def __init__(self, spec: EntitySpec, page_size: int) -> None:
        self.spec = spec
        self.page_size = page_size
        self._lock = threading.Lock()
        self._run: object | None = None
        self._answers = RangeCensus(spec.entity, spec.where, page_size)
        self._warned = False

    def _this_run(self) -> RangeCensus:
        run = dlt.current.source_state()
        if run is not self._run:
            self._run, self._warned = run, False
            self._answers = RangeCensus(self.spec.entity, self.spec.where, self.page_size)
        return self._answers

    def live_ids(self, client: CiviCRMClient) -> set[int]:
        """Every id CiviCRM lists now (``select: ['id']`` only, large keyset pages)."""
        with self._lock:
            return self._this_run().live_ids(client)

    def vanished(
        self, client: CiviCRMClient, before: IdRanges, seen: set[int]
    ) -> tuple[list[int], int]:
        """Ids in ``before`` that CiviCRM no longer has, and how many records it counts."""
        with self._lock:
            found = self._this_run().vanished(client, before, seen)
            if found.requests > 1:
                log.info(
                    "CiviCRM %s: count differs from the ids held; %d requests (%d calls) "
                    "listed %d ids and found %d vanished",
                    self.spec.entity,
                    found.requests,
                    found.calls,
                    found.ids_listed,
                    len(found.vanished),
                )
            if found.unheld and not self._warned:
                self._warned = True
                # Listed but never loaded (older than the cursor, or hidden until now): the
                # count will differ on every run, and each run will narrow and list, until a
                # full read.
                log.warning(
                    "CiviCRM %s: %d records CiviCRM lists were never loaded (changed before "
                    "the cursor); a full read (a new pipeline) loads them",
                    self.spec.entity,
                    found.unheld,
                )
            return found.vanished, found.count


def count_rows(client: CiviCRMClient, entity: str, where: tuple[tuple[Any, ...], ...]) -> int:
    """How many records match, in one request: ``select: ['row_count']`` fetches no row."""
    result = client.get(entity, {"select": ["row_count"], "where": [list(w) for w in where]})
    matched = result.count_matched
    return int(matched if matched is not None else result.count)


def list_ids(
    client: CiviCRMClient, entity: str, where: tuple[tuple[Any, ...], ...], page_size: int
) -> set[int]:
    """Every matching id: ``select: ['id']`` only, keyset pages in id order (no offset drift).

    The periodic full comparison and narrowing's fallback use it; see ``RangeCensus``."""
    live: set[int] = set()
    last = 0
    while True:
        page = client.get(
            entity,
            {
                "select": ["id"],
                "where": [*[list(w) for w in where], ["id", ">", last]],
                "orderBy": {"id": "ASC"},
                "limit": page_size,
            },
        ).values
        if page:
            ids = [int(r["id"]) for r in page]
            live.update(ids)
            last = ids[-1]
        if len(page) < page_size:
            return live


def _guard(
    table: str,
    vanished: list[int],
    held: int,
    listed: int,
    settings: CiviCRMSettings,
    state: dict[str, Any],
    key: str = HELD,
) -> list[int]:
    """The ids that may be marked deleted on this run's word: all of them, or none.

    CiviCRM answers a lost permission or ACL with an empty or shorter list, not an error, so
    an empty answer or a vanishing above ``max_deleted_share`` deletes nothing. The number
    held back is kept in state and logged (counts only, never an id or a name).
    """
    if not vanished:
        _unhold(state, key)
        return []
    allowed = max(MIN_DELETIONS_ALLOWED, int(settings.max_deleted_share * held))
    empty = listed == 0 and settings.max_deleted_share < 1
    if empty or len(vanished) > allowed:
        state[key] = len(vanished)  # `hub check` and the run summary say it (held.py)
        state.setdefault(f"{key}_since", datetime.now(UTC).isoformat(timespec="seconds"))
        why = "CiviCRM answered with none" if empty else "more than max_deleted_share"
        rows = "rows of contacts" if key == HELD_PARENTS else "records"
        hold(
            state,
            key,
            f"{len(vanished)} of {held} loaded {rows} are no longer listed by CiviCRM ({why}); "
            "none is marked deleted",
            FIX,
        )
        log.warning(
            "CiviCRM %s: %d of %d loaded records are no longer listed (%s); none is marked "
            "deleted on one run's word, since a lost permission or ACL looks the same. If they "
            "were deleted on purpose, raise connector.max_deleted_share (1 accepts anything) "
            "for one run.",
            table,
            len(vanished),
            held,
            why,
        )
        return []
    _unhold(state, key)
    return vanished


def _unhold(state: dict[str, Any], key: str) -> None:
    """This run's reconciliation of the table passed: its hold (if any) is lifted."""
    state.pop(key, None)
    state.pop(f"{key}_since", None)
    lift(state, key)


def _entity_rows(
    spec: EntitySpec,
    parent: EntitySpec | None,
    settings: CiviCRMSettings,
    connect: Callable[[], CiviCRMClient],
    reconcile: bool | None,
    census: _Census | None = None,
    full_reload: bool = False,
) -> Iterator[Any]:
    """``_table_rows``, appended rather than merged on a table's very first load.

    A first load reads every record once, by id, into a table that does not exist yet:
    merging it costs a staging copy and a merge for nothing (a third of a 200,000-contact
    load). Every later load, ``hub run --full`` included, merges as declared.
    """
    # Asked of the warehouse, not the state: a state restored or reset while the table keeps
    # its rows must never append onto them (connectors/first_load.py).
    first = nothing_to_merge(spec.table)
    for item in _batched(
        _table_rows(spec, parent, settings, connect, reconcile, census, full_reload)
    ):
        if first:
            item = dlt.mark.with_hints(item, dlt.mark.make_hints(write_disposition="append"))
            first = False
        yield item


def _batched(tables: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """Pages joined into items of at least ``ITEM_ROWS`` rows (no copy: Arrow chunks).

    dlt's extract does some bookkeeping per item (schema, buffers); at 1,000-row pages it
    adds up to a visible share of a full read.
    """
    held: list[pa.Table] = []
    rows = 0
    for table in tables:
        held.append(table)
        rows += table.num_rows
        if rows >= ITEM_ROWS:
            yield pa.concat_tables(held) if len(held) > 1 else held[0]
            held, rows = [], 0
    if held:
        yield pa.concat_tables(held) if len(held) > 1 else held[0]


def _table_rows(
    spec: EntitySpec,
    parent: EntitySpec | None,
    settings: CiviCRMSettings,
    connect: Callable[[], CiviCRMClient],
    reconcile: bool | None,
    census: _Census | None = None,
    full_reload: bool = False,
) -> Iterator[pa.Table]:
    """Yield one table's pages, then deletion markers; keep cursor and ids in dlt state.

    ``census`` (the contacts') makes the table check for contacts deleted for good on every
    run: the contact table marks them, a table hanging off contacts clears their rows.
    ``full_reload`` drops the cursor, so the table is read from scratch; the ids loaded
    before are kept, so the read still finds (guarded) what vanished meanwhile.
    """
    state = dlt.current.resource_state()
    if full_reload:
        state.pop("cursor", None)
    state["runs"] = int(state.get("runs", 0)) + 1
    known = IdRanges(state.setdefault("known_ids", []))
    before = known.copy()  # ids loaded before this run: only these can have vanished
    with connect() as client:
        fields = _fields(spec)
        arrow = _ArrowTable(_table_columns(spec, fields), spec.entity)
        # Tables read per parent follow their parent's modified_date.
        incremental = spec.incremental or spec.parent is not None
        if spec.detect_modified_date:
            incremental = "modified_date" in client.field_names(spec.entity)
            state["incremental"] = incremental
            if not incremental:
                del fields["modified_date"]  # not selectable before CiviCRM 6.9
                state.pop("cursor", None)  # a downgrade must not leave a stale cursor behind
        cursor: str | None = state.get("cursor") if incremental else None
        if parent is None and _fields_changed(state, spec, fields) and cursor is not None:
            cursor = None  # rows read before lack a newly read field's value: read them all
        start_cursor = cursor
        if incremental and RESYNC in state:
            # Held: what CiviCRM hid since the hold began may have been edited meanwhile, so
            # every held run reads from where the hold began (None: from scratch).
            resync = state[RESYNC]
            cursor = resync if resync is None or cursor is None else min(cursor, resync)
        full = cursor is None
        if parent is None:
            reader = _Reader(
                client, spec.entity, list(fields), [list(w) for w in spec.where], settings.page_size
            )
            pages = (
                reader.by_id()
                if full
                else reader.by_modified(_shift(cursor or "", settings.lookback_seconds))
            )
            for page in pages:
                known.extend(reader.page_ids)
                yield arrow.page(page, fields)
            seen = reader.seen_ids
            newest = reader.max_modified
        else:
            assert spec.parent is not None
            join = _ChildJoin.of(spec, parent, fields)
            fk = join.fk
            version_column = _version_column(spec)
            parents_known: IdRanges | None = None
            if census is not None:
                if "known_parents" not in state and not full:
                    # Loaded before parents were tracked: start from the parent table's ids.
                    state["known_parents"] = _parent_ids(parent)
                parents_known = IdRanges(state.setdefault("known_parents", []))
            parents_before = parents_known.copy() if parents_known is not None else None
            # Parents changed since the cursor (id -> modified_date): an incremental read
            # lists them (ids only) so that one left with no children still clears its old
            # ones. A full read needs none: it reads every child.
            window: dict[int, Any] = {}
            newest = None
            child_where = list(join.where)
            if not full:
                since = _shift(cursor or "", settings.lookback_seconds)
                parent_select = ["id", "modified_date"]
                parents = _Reader(
                    client,
                    parent.entity,
                    parent_select,
                    [list(w) for w in parent.where],
                    settings.page_size,
                )
                for parent_page in parents.by_modified(since):
                    for p in parent_page:
                        window[int(p["id"])] = p.get("modified_date")
                newest = parents.max_modified
                child_where.append([join.version_key, ">=", since])
            if parents_known is not None:
                for pid in window:
                    parents_known.add(pid)
            # One keyset pager over the child entity itself, joined on its parent's cursor
            # window: no per-page IN lists of parent ids (issue #19).
            children = _Reader(client, spec.entity, join.select, child_where, settings.page_size)
            digests = _BlockDigests(fields, fk, None) if full else None
            with_children: set[int] = set()
            for page in children.by_id():
                # Without the parent's trash flag a trashed person's rows would keep their
                # personal fields: a join field CiviCRM left out fails the load.
                join.require(parent.entity, page)
                versions, blank = join.versions(page), join.trashed(page)
                known.extend(children.page_ids)
                if not full:  # (parents left childless are cleared only after a window)
                    with_children.update([int(r[fk]) for r in page])
                top = max(filter(None, versions), default=None)
                if top and (newest is None or top > newest):
                    newest = str(top)
                if digests is not None:
                    digests.add(page)
                yield arrow.page(page, fields, {version_column: versions}, blank)
            if digests is not None:
                state[DIGESTS] = digests.finish()
            childless = [p for p in window if p not in with_children]
            for start in range(0, len(childless), settings.page_size):
                chunk = childless[start : start + settings.page_size]
                yield arrow.tombstones(chunk, fk, version_column, [window[p] for p in chunk])
            seen = children.seen_ids
            reread = set(window) | with_children  # parents whose children were all read
            if parents_known is not None and parents_before is not None and census is not None:
                # Parents deleted for good take their rows with them in this same load.
                if full:
                    live = census.live_ids(client)
                    for pid in sorted(live):
                        parents_known.add(pid)
                    gone = [p for p in parents_before if p not in live]
                    listed = len(live)
                elif reconcile is not False:
                    gone, listed = census.vanished(client, parents_before, set(window))
                else:
                    gone, listed = [], 0
                gone = _guard(
                    f"{spec.table} (by {parent.entity})",
                    gone,
                    len(parents_before),
                    listed,
                    settings,
                    state,
                    key=HELD_PARENTS,
                )
                for p in gone:
                    parents_known.remove(p)
                for start in range(0, len(gone), settings.page_size):
                    chunk = gone[start : start + settings.page_size]
                    yield arrow.tombstones(chunk, fk, version_column, [None] * len(chunk))
        if incremental and newest is not None and (cursor is None or newest > cursor):
            state["cursor"] = newest

        due = (
            reconcile
            if reconcile is not None
            else (state["runs"] % settings.reconcile_every_runs == 0)
        )
        listed = 0
        if full:
            # A full read saw every live id: reconcile for free.
            vanished = [i for i in before if i not in seen]
            listed = len(seen)
        elif due and parent is not None:
            # Children can change without their parent (a contact merge moves activity and
            # case roles): the periodic audit lists them all and re-reads what moved.
            live = yield from _audit_children(
                client, spec, join, fields, state, settings, arrow, reread, known
            )
            vanished = [i for i in before if i not in live and i not in seen]
            listed = len(live)
        elif due:
            # Ids read in this run are left for the next check: a marker and a fresh row for
            # the same id in one load would race in the merge.
            own = census if parent is None else None  # a child lists its own ids
            found, listed = _vanished(client, spec, before, settings.reconcile_page_size, own)
            vanished = [i for i in found if i not in seen]
        elif census is not None and parent is None and reconcile is not False:
            vanished, listed = census.vanished(client, before, seen)
        else:
            vanished = []
        vanished = _guard(spec.table, vanished, len(before), listed, settings, state)
        if vanished:
            for i in vanished:
                known.remove(i)
            for start in range(0, len(vanished), settings.page_size):
                yield arrow.markers(vanished[start : start + settings.page_size])
        if not seen and not vanished and not known.ranges:
            # Nothing in CiviCRM yet: an empty item still creates the table with its columns,
            # so the SQL downstream can rely on it existing.
            yield arrow.page([], fields)
        state["last_reconciled_run"] = (
            state["runs"] if (full or due) else state.get("last_reconciled_run")
        )
        if is_held(state):
            state.setdefault(RESYNC, start_cursor)
        else:
            # The run that lifts the hold read from where it began: nothing is left behind.
            state.pop(RESYNC, None)


def _fields_changed(state: dict[str, Any], spec: EntitySpec, fields: dict[str, str]) -> bool:
    """Whether this table's loaded rows were read with other fields than this run selects.

    A record keeps what it was read with until it changes in CiviCRM: a field newly named in
    the config (or one a CiviCRM user could not see when an older hub version loaded it
    blank, issue #19) would stay blank on every record not edited since. Such a table is
    read in full once. The list is kept in the resource's state, committed with the load.
    """
    selected = sorted(fields)
    previous = state.get(FIELDS_READ)
    state[FIELDS_READ] = selected
    if previous == selected:
        return False
    if previous is not None or state.get("cursor") is not None:
        log.info(
            "CiviCRM %s: the fields read changed since the last load (%s); every record is "
            "read again once, so none keeps a blank value for them",
            spec.entity,
            ", ".join(sorted(set(selected) ^ set(previous)))
            if previous is not None
            else "not recorded by the previous load",
        )
    return True


def _parent_ids(parent: EntitySpec) -> list[list[int]]:
    """The parent table's loaded ids (as ranges), read from its resource's dlt state."""
    resources = dlt.current.source_state().get("resources", {})
    return [list(p) for p in resources.get(parent.table, {}).get("known_ids", [])]


def _vanished(
    client: CiviCRMClient,
    spec: EntitySpec,
    before: IdRanges,
    page_size: int,
    census: _Census | None = None,
) -> tuple[list[int], int]:
    """Ids loaded earlier that CiviCRM no longer returns (hard-deleted, or filtered out), and
    how many ids it returned."""
    live = (
        census.live_ids(client)
        if census is not None
        else list_ids(client, spec.entity, spec.where, page_size)
    )
    return [i for i in before if i not in live], len(live)


def _version_column(spec: EntitySpec) -> str:
    """The column that orders two reads of one record: its own modified_date, or (for
    tables read per parent) the parent's, which every change to the child bumps."""
    return f"{spec.parent[0]}_modified_date" if spec.parent else "modified_date"


def _fields(spec: EntitySpec) -> dict[str, str]:
    fields = dict(spec.fields)
    if spec.detect_modified_date:
        fields["modified_date"] = "modified_date"
    return fields


def _column_hints(spec: EntitySpec) -> dict[str, dict[str, Any]]:
    """Explicit types, so ids stay integers and columns exist before their first value.

    A record edited during a run is read twice in that run; ``dedup_sort`` on its version
    column makes the merge keep the later read, not an arbitrary one.
    """
    hints: dict[str, dict[str, Any]] = {}
    for column, kind in _table_columns(spec, _fields(spec)).items():
        hint: dict[str, Any] = {"name": column, "data_type": kind, "nullable": column != "id"}
        if kind == "timestamp":
            hint["timezone"] = False
        hints[column] = hint
    hints["id"]["primary_key"] = True
    hints[_version_column(spec)]["dedup_sort"] = "desc"
    return hints


@dlt.source(name=SOURCE_NAME)
def civicrm_source(
    settings: CiviCRMSettings,
    api_key: str,
    site_key: str | None = None,
    reconcile: bool | None = None,
    member: str | None = None,
    full_reload: bool = False,
) -> Any:
    """One merge-on-``id`` resource per entity in ``settings.entities``.

    ``reconcile`` forces (True) the full id comparison of every table, or skips (False) every
    hard-delete check, the per-run contact check included; None (the default) checks contacts
    on every run and every table each ``settings.reconcile_every_runs`` runs. ``member`` (the
    org id) names the member in the error when the load passes ``settings.load_deadline``,
    which every resource's requests share. ``full_reload`` (``hub run --full``) re-reads
    every table from scratch, for this member only (its own pipeline state); the merge on
    ``id`` makes that an upsert, and deletions found on the way are still guarded. No
    network I/O happens here.
    """
    specs = entity_specs(settings)
    load = LoadDeadline(settings.load_deadline, member)
    censuses = {k: _Census(s, settings.reconcile_page_size) for k, s in specs.items() if s.census}
    # Every selected field must be visible before any resource reads a row (fields.py).
    fields_check = FieldCheck(selected_fields(settings))

    def connect() -> CiviCRMClient:
        return CiviCRMClient(settings, api_key, site_key, load_deadline=load)

    resources = []
    for key in settings.entities:
        spec = specs[key]
        parent = specs[spec.parent[0]] if spec.parent else None
        census = censuses.get(key) or (censuses.get(spec.parent[0]) if spec.parent else None)
        resources.append(
            dlt.resource(
                fields_check.guard(
                    _entity_rows(spec, parent, settings, connect, reconcile, census, full_reload),
                    connect,
                ),
                name=spec.table,
                write_disposition="merge",
                primary_key="id",
                # Children merge by parent too: re-reading a parent replaces all its children,
                # so one deleted in CiviCRM (which bumps its parent) leaves on the next run.
                merge_key=spec.parent[1] if spec.parent else None,
                columns=_column_hints(spec),
            )
        )
    return resources


def raw_pipeline(
    org_id: str, destination: AnyDestination | str, pipelines_dir: Path | str
) -> dlt.Pipeline:
    """The member's CiviCRM pipeline (``hub_<org>_civicrm`` into ``raw_<org>``)."""
    return member_pipeline(org_id, SOURCE_NAME, destination, pipelines_dir)
