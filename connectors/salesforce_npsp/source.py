"""The dlt source for members on Salesforce NPSP with the Program Management Module.

``npsp_source(settings, credentials)`` does no network I/O when it is built (Dagster builds
it while loading definitions); the org is contacted only when a resource runs.

Incremental reading, and why it cannot lose records:
- Each resource keeps its cursor on ``SystemModstamp`` (bumped by every change, including
  system ones and deletes, unlike LastModifiedDate) in dlt resource state.
- A run reads the half-open window ``SystemModstamp >= cursor - lookback AND < end`` through
  ``queryAll`` ordered by ``SystemModstamp, Id``, so deletes arrive as rows with ``IsDeleted``
  true. ``end`` is "now" truncated to the second (SOQL's literal precision).
- After each page (pages reach dlt in batches, ``_batched``) the cursor moves to the last
  SystemModstamp read, inclusive: records sharing that timestamp on the next page are read
  again next time, never skipped, and the ``merge`` on ``Id`` makes the re-read harmless.
  The look-back covers transactions that commit with a timestamp slightly older than when
  they become visible.
- When the daily API allocation reaches the member's reserve (or is exhausted) the resource
  stops yielding, keeping its cursor: what was read is loaded, and the next run resumes from
  there. Until one does, the resource is held (``STOPPED``, connectors/holds.py): a load that
  stopped early holds the member back instead of publishing part of its people.
- Formula fields change without bumping SystemModstamp, so every ``full_refresh_days`` the
  window starts from ``start_date`` again.
- Deletions queryAll and the delete log no longer show (hard deletes, an emptied recycle bin,
  a purged log) are found by comparing ids: see deletions.py.
- A field read at the last load that describe no longer lists (field-level security, or a
  deleted field: Salesforce cannot tell them apart) holds the object unread, cursor kept,
  so the merge never blanks it; once it is back, the next run reads every change since.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.destination import AnyDestination
from dlt.pipeline.exceptions import PipelineStepFailed

from connectors.deadline import LoadDeadline
from connectors.errors import ConnectorError, PermanentSourceError
from connectors.first_load import first_load_hints, nothing_to_merge
from connectors.holds import hold, lift
from connectors.raw_pipeline import member_pipeline
from connectors.read_ahead import read_ahead
from connectors.salesforce_npsp.client import (
    ApiAllocationReserveReached,
    BulkQueryRejected,
    SalesforceApiError,
    SalesforceClient,
    selectable_fields,
)
from connectors.salesforce_npsp.columns import as_arrow, deleted_mask, fast_column
from connectors.salesforce_npsp.deletions import (
    DELETE_LOG_DAYS,
    LAST_RECONCILED,
    guard,
    loaded_live_ids,
    reconcile_due,
    tombstones,
)
from connectors.salesforce_npsp.settings import Credentials, SalesforceSettings
from connectors.salesforce_npsp.targeted import ObjectTargets, deletions_to_apply, targeted_pages
from connectors.values import masked, shown

log = logging.getLogger(__name__)

SOURCE_NAME = "salesforce_npsp"
PMM_PREFIX = "pmdm__"
# Hold names (connectors/holds.py): a load that stopped before reading all of an object (the
# daily API allocation), and an object waiting for fields it can no longer read.
STOPPED = "stopped_early"
FIELDS_HIDDEN = "fields_hidden"
# Resource-state flag: the delete log missed part of the time since the last load, so the
# ids are compared on every run until one such comparison completes.
LOG_GAP = "log_gap"

# describe type → dlt data type. Everything not listed is text (ids, picklists, phones...).
_DLT_TYPES = {
    "boolean": "bool",
    "date": "date",
    "datetime": "timestamp",
    "double": "double",
    "currency": "double",
    "percent": "double",
    "int": "bigint",
    "long": "bigint",
}


# REST query pages reach dlt in batches of about this many records: dlt derives the table
# schema again for every Arrow item it is given, which over 2,000-record pages cost about a
# tenth of a load's time.
BATCH_RECORDS = 20_000

_ARROW_TYPES = {
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "double": pa.float64(),
    "bigint": pa.int64(),
}


def _parse_value(value: Any, kind: str) -> Any:
    """One value of a ``kind`` column; ValueError when it cannot be read as one."""
    if value in (None, ""):
        return None
    if kind == "timestamp":
        return parse_sf_datetime(value)
    if kind == "date":
        return date.fromisoformat(str(value)[:10]) if len(str(value)) >= 10 else _bad(value)
    if kind == "double":
        return float(value)
    if kind == "bigint":
        return int(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "false"):
            return text == "true"
        return _bad(value)
    return str(value)


def _bad(value: Any) -> Any:
    raise ValueError("unreadable")


def _arrow_column(
    values: list[Any] | pa.Array, kind: str, bad: list[int] | None = None
) -> pa.Array:
    """One column of a page, typed as hinted (REST JSON and parsed Bulk CSV alike).

    A value that cannot be read as its type (a Birthdate of '31/02/garbage') is left empty
    and its position added to ``bad``: one such value used to fail the member's whole load,
    after minutes of retries, with the value itself in the error. Arrow converts the whole
    column at once when it can (``fast_column``); only a column holding some other shape is
    read value by value here.
    """
    array = values if isinstance(values, pa.Array) else as_arrow(values)
    if array is not None:
        fast = fast_column(array, kind, _ARROW_TYPES.get(kind))
        if fast is not None:
            return fast
    if isinstance(values, pa.Array):
        values = values.to_pylist()
    if kind not in _ARROW_TYPES:
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    out: list[Any] = []
    for i, value in enumerate(values):
        try:
            out.append(_parse_value(value, kind))
        except (ValueError, TypeError, OverflowError):
            out.append(None)
            if bad is not None:
                bad.append(i)
    return pa.array(out, _ARROW_TYPES[kind])


# Fields that describe a person: a record deleted in Salesforce keeps none of them in the
# hub, not even in the raw layer (issue #18); its id and IsDeleted flag still load.
PERSONAL_FIELDS = frozenset(
    {
        "FirstName",
        "LastName",
        "MiddleName",
        "Name",
        "Birthdate",
        "Email",
        "Phone",
        "MobilePhone",
        "HomePhone",
        "OtherPhone",
        "MailingStreet",
        "MailingCity",
        "MailingPostalCode",
        "OtherStreet",
        "OtherCity",
        "OtherPostalCode",
        "BillingStreet",
        "BillingCity",
        "BillingPostalCode",
        "npe01__HomeEmail__c",
        "npe01__WorkEmail__c",
        "npe01__AlternateEmail__c",
        "npe01__WorkPhone__c",
    }
)


# Objects whose every field is about a person (or a household): an unreadable value of
# theirs reaches quarantine masked, as does one of PERSONAL_FIELDS on any object.
PERSONAL_OBJECTS = frozenset({"Contact", "Account"})

# The raw column naming, per record, the values that could not be read (JSON: field ->
# [type, value as quarantine shows it]); NULL when every value was read. No Salesforce
# field can start with "_", so it never meets one. The canonical build turns it into
# quarantine.rejected_rows (transforms/unreadable.py). It is on the record's own row, so
# a corrected record, merged on Id, clears it.
UNREADABLE_COLUMN = "_hub_unreadable"


def is_personal(sobject: str | None, name: str) -> bool:
    """Whether a field's values are personal data (unknown object: assume they are)."""
    return sobject is None or sobject in PERSONAL_OBJECTS or name in PERSONAL_FIELDS


def _deleted(record: dict[str, Any]) -> bool:
    value = record.get("IsDeleted")
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def arrow_page(
    page: list[dict[str, Any]] | pa.Table,
    columns: dict[str, str],
    unreadable: dict[str, list[str]] | None = None,
    sobject: str | None = None,
) -> pa.Table:
    """A page of records as a typed Arrow table, plus the ``UNREADABLE_COLUMN``.

    ``page`` is REST records (dicts) or a Bulk result set (``typed_bulk_table``). Arrow items
    skip dlt's row-by-row normaliser, which was most of a load's time; a column missing from
    a record (a purged-delete placeholder) is null. ``unreadable`` collects, per field, the
    ids of records whose value could not be read (never the values). Each such value is
    named in its record's ``UNREADABLE_COLUMN``, masked when the field of ``sobject`` is
    personal (``is_personal``), so the raw value itself never reaches the hub: not the raw
    layer, the quarantine, the load files nor the logs.
    """
    size = len(page)
    raw = _raw_columns(page, columns)
    deleted = _deleted_rows(page)
    if deleted is not None:
        for name in columns:
            if name in PERSONAL_FIELDS:
                raw[name] = _blanked(raw[name], deleted)
    arrays = []
    notes: dict[int, dict[str, list[str]]] = {}
    for name, kind in columns.items():
        bad: list[int] = []
        arrays.append(_arrow_column(raw[name], kind, bad))
        if not bad:
            continue
        column = raw[name]
        values = column.to_pylist() if isinstance(column, pa.Array) else column
        hide = is_personal(sobject, name)
        for i in bad:
            notes.setdefault(i, {})[name] = [kind, masked(values[i]) if hide else shown(values[i])]
        if unreadable is not None:
            ids = _ids(page)
            unreadable.setdefault(name, []).extend(str(ids[i]) for i in bad)
    # Id is the merge key: declared not-null, as its dlt hint is.
    fields = [pa.field(n, a.type, nullable=n != "Id") for n, a in zip(columns, arrays, strict=True)]
    if notes:
        texts = [json.dumps(notes[i], sort_keys=True) if i in notes else None for i in range(size)]
        arrays.append(pa.array(texts, pa.string()))
    else:
        arrays.append(pa.nulls(size, pa.string()))
    fields.append(pa.field(UNREADABLE_COLUMN, pa.string(), nullable=True))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _raw_columns(
    page: list[dict[str, Any]] | pa.Table, columns: dict[str, str]
) -> dict[str, list[Any] | pa.Array]:
    """Each hinted column's values as they came (a record without the field: null)."""
    if isinstance(page, pa.Table):
        present = set(page.column_names)
        return {
            name: page.column(name).combine_chunks() if name in present else pa.nulls(page.num_rows)
            for name in columns
        }
    return {name: [r.get(name) for r in page] for name in columns}


def _deleted_rows(page: list[dict[str, Any]] | pa.Table) -> pa.Array | None:
    """Mask of deleted records (as ``_deleted`` reads them), or None when there are none."""
    if isinstance(page, pa.Table):
        if "IsDeleted" not in page.column_names:
            return None
        mask = deleted_mask(page.column("IsDeleted").combine_chunks())
    else:
        flags = as_arrow([r.get("IsDeleted") for r in page])
        if flags is not None and (pa.types.is_boolean(flags.type) or pa.types.is_null(flags.type)):
            mask = deleted_mask(flags) if len(flags) else pa.array([], pa.bool_())
        else:
            mask = pa.array([_deleted(r) for r in page], pa.bool_())
    return mask if pc.any(mask).as_py() else None


def _blanked(values: list[Any] | pa.Array, deleted: pa.Array) -> list[Any] | pa.Array:
    """A personal column with the deleted records' values removed."""
    if isinstance(values, pa.Array):
        return pc.if_else(deleted, pa.scalar(None, values.type), values)
    return [None if gone else v for v, gone in zip(values, deleted.to_pylist(), strict=True)]


def _ids(page: list[dict[str, Any]] | pa.Table) -> list[Any]:
    if isinstance(page, pa.Table):
        return page.column("Id").to_pylist() if "Id" in page.column_names else [None] * len(page)
    return [r.get("Id") for r in page]


@dataclass(frozen=True)
class ObjectSpec:
    """One Salesforce object read into one raw table; ``mapped`` fields are those the
    canonical model uses, reported when the integration user cannot read them."""

    resource: str
    sobject: str
    mapped: tuple[str, ...] = ()


def object_specs(settings: SalesforceSettings) -> list[ObjectSpec]:
    """Resources in load order; the outcome object comes from the member's mapping."""
    contact = ["FirstName", "LastName", "Birthdate", "Email", "Phone", "MailingPostalCode"]
    if settings.consent_field:
        contact.append(settings.consent_field)
    specs = [
        ObjectSpec("npsp__account", "Account", ("Name",)),
        ObjectSpec("npsp__contact", "Contact", tuple(contact)),
        ObjectSpec("pmdm__program", "pmdm__Program__c", ("Name", "pmdm__Status__c")),
        ObjectSpec(
            "pmdm__service",
            "pmdm__Service__c",
            ("Name", "pmdm__Program__c", "pmdm__UnitOfMeasurement__c"),
        ),
        ObjectSpec(
            "pmdm__program_engagement",
            "pmdm__ProgramEngagement__c",
            (
                "pmdm__Contact__c",
                "pmdm__Program__c",
                "pmdm__Stage__c",
                "pmdm__StartDate__c",
                "pmdm__EndDate__c",
            ),
        ),
        ObjectSpec(
            "pmdm__service_delivery",
            "pmdm__ServiceDelivery__c",
            (
                "pmdm__Contact__c",
                "pmdm__Service__c",
                "pmdm__ProgramEngagement__c",
                "pmdm__DeliveryDate__c",
                "pmdm__Quantity__c",
                "pmdm__AttendanceStatus__c",
            ),
        ),
        ObjectSpec("npsp__opportunity", "Opportunity"),
        ObjectSpec("npsp__recurring_donation", "npe03__Recurring_Donation__c"),
    ]
    if settings.outcome is not None:
        specs.append(
            ObjectSpec(
                "npsp__outcome", settings.outcome.object, tuple(settings.outcome.mapped_fields())
            )
        )
    if settings.objects is not None:
        specs = [s for s in specs if s.resource in settings.objects]
    return specs


@dataclass
class SyncReport:
    """What one run noticed, for the caller to show: nothing here fails the load."""

    stopped: str | None = None
    stop_error: ApiAllocationReserveReached | None = None
    missing_objects: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    methods: dict[str, str] = field(default_factory=dict)
    drift: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    api_used: int | None = None
    api_max: int | None = None
    sessions: list[_Session] = field(default_factory=list, repr=False)

    def close(self) -> None:
        """Close the HTTP connections the run opened (load_npsp does this for you)."""
        for session in self.sessions:
            session.close()

    def messages(self) -> list[str]:
        out = list(self.missing_objects.values()) + list(self.problems) + list(self.notes)
        for resource, change in self.drift.items():
            out.append(f"{resource}: schema changed since the last run: {change}")
        if self.stopped:
            out.append(self.stopped)
        return out


class _Session:
    """One client shared by all resources of a source, created on first use (not at build),
    and the load's deadline, which all of their requests share."""

    def __init__(
        self,
        settings: SalesforceSettings,
        credentials: Credentials,
        sleep: Callable[[float], None],
        load_deadline: LoadDeadline | None = None,
    ) -> None:
        self.settings = settings
        self._credentials = credentials
        self._sleep = sleep
        self.load_deadline = load_deadline or LoadDeadline(settings.load_deadline)
        self._client: SalesforceClient | None = None

    @property
    def client(self) -> SalesforceClient:
        if self._client is None:
            self._client = SalesforceClient(
                self.settings,
                self._credentials,
                sleep=self._sleep,
                load_deadline=self.load_deadline,
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def soql_datetime(value: datetime) -> str:
    """SOQL dateTime literal (whole seconds, UTC, no quotes)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_sf_datetime(text: str) -> datetime:
    """Salesforce's ``2025-01-01T00:00:00.000+0000`` (or ISO ``Z``) as an aware datetime."""
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = text[:-2] + ":" + text[-2:]
    return datetime.fromisoformat(text).astimezone(UTC)


def _floor_second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def _schema_drift(before: dict[str, str] | None, now: dict[str, str]) -> dict[str, Any]:
    if not before:
        return {}
    drift: dict[str, Any] = {}
    added = sorted(set(now) - set(before))
    removed = sorted(set(before) - set(now))
    retyped = {n: f"{before[n]} -> {now[n]}" for n in now if n in before and before[n] != now[n]}
    if added:
        drift["added"] = added
    if removed:
        drift["removed"] = removed
    if retyped:
        drift["retyped"] = retyped
    return drift


def _object_rows(
    session: _Session,
    spec: ObjectSpec,
    report: SyncReport,
    full_refresh: bool,
    clock: Callable[[], datetime],
    target: ObjectTargets | None = None,
) -> Iterator[Any]:
    """Read one object's changed (and deleted) records since the resource's cursor; with a
    ``target`` (ids events named), just those records, once a window read has been made."""
    settings = session.settings
    state = dlt.current.resource_state()
    client = session.client
    try:
        if spec.sobject not in client.sobject_names():
            if spec.sobject.startswith(PMM_PREFIX):
                message = (
                    f"{spec.resource}: this org has no {spec.sobject} (the Program Management "
                    "Module is not installed or the integration user cannot see it); install "
                    "PMM or grant its objects to the user's permission set to load programmes, "
                    "engagements and service deliveries"
                )
            else:
                message = (
                    f"{spec.resource}: object {spec.sobject} is not visible to the integration "
                    "user; grant read access or change the member's mapping"
                )
            log.warning(message)
            report.missing_objects[spec.resource] = message
            lift(state, STOPPED)
            return
        fields = selectable_fields(client.describe(spec.sobject))
        for required in ("Id", "SystemModstamp"):
            if required not in fields:
                raise PermanentSourceError(
                    f"{spec.resource}: the integration user cannot read {spec.sobject}.{required};"
                    " grant field-level security for it (incremental loading needs it)"
                )
        if _fields_lost(spec, state, fields, settings, report, full_refresh):
            lift(state, STOPPED)
            return
        drift = _schema_drift(state.get("fields"), fields)
        if drift:
            log.warning("%s: schema drift since last run: %s", spec.resource, drift)
            report.drift[spec.resource] = drift
        state["fields"] = fields
        for name in spec.mapped:
            if name not in fields:
                report.problems.append(
                    f"{spec.resource}: the integration user cannot read field "
                    f"{spec.sobject}.{name} (missing or hidden by field-level security): grant "
                    "field-level security or remove it from the member's mapping"
                )
        # Types are hinted once per column: a retyped field keeps its first type in the raw
        # table (dlt adds a variant column for values that no longer fit) instead of failing.
        hinted: dict[str, str] = dict(state.get("hinted", {}))
        for name, kind in fields.items():
            hinted.setdefault(name, _DLT_TYPES.get(kind, "text"))
        state["hinted"] = hinted
        columns = {
            name: {"name": name, "data_type": kind, "nullable": name != "Id"}
            for name, kind in hinted.items()
            if name in fields
        }
        # If one load ever holds two versions of a record, the merge keeps the newest.
        columns["SystemModstamp"]["dedup_sort"] = "desc"
        if target is not None and state.get("cursor"):
            # Events named the records: read just those, cursors untouched (targeted.py).
            yield from _targeted_rows(client, spec, fields, columns, target, state, report)
            return

        now = clock()
        end = _floor_second(now)
        last_full = state.get("last_full_refresh")
        due = settings.full_refresh_days is not None and (
            last_full is None
            or now - parse_sf_datetime(last_full) >= timedelta(days=settings.full_refresh_days)
        )
        full = bool(full_refresh or due or not state.get("cursor"))
        if full:
            state["cursor"] = None
            state["last_full_refresh"] = soql_datetime(now)
            start = parse_sf_datetime(settings.start_date)
        else:
            cursor = parse_sf_datetime(state["cursor"])
            start = _floor_second(cursor - timedelta(seconds=settings.lookback_seconds))
        if start >= end:
            lift(state, STOPPED)
            return
        where = (
            f"SystemModstamp >= {soql_datetime(start)} AND SystemModstamp < {soql_datetime(end)}"
        )
        kinds = {name: column["data_type"] for name, column in columns.items()}
        columns[UNREADABLE_COLUMN] = {
            "name": UNREADABLE_COLUMN,
            "data_type": "text",
            "nullable": True,
        }
        hints = merge_hints = dlt.mark.make_hints(columns=columns, write_disposition="merge")
        unreadable: dict[str, list[str]] = {}
        # A full read into a table with no row yet (asked of the destination while a Bulk job
        # runs, as there is nothing to do meanwhile) needs no merge: nothing can have
        # vanished, and its rows are appended, skipping the staging copy and the merge
        # (connectors/first_load.py).
        emptiness: list[bool] = []
        job = (
            _bulk_job(
                client,
                spec,
                fields,
                where,
                report,
                lambda: emptiness.append(nothing_to_merge(spec.resource)),
            )
            if full
            else None
        )
        report.methods[spec.resource] = "bulk" if job else "rest"
        if full and not emptiness:
            emptiness.append(nothing_to_merge(spec.resource))
        empty = bool(emptiness and emptiness[0])
        if empty:
            hints = first_load_hints(columns)
        count = 0
        # Every id this run read: a vanished id is one Salesforce no longer lists at all.
        seen: set[str] = set()
        if job is not None:
            # Bulk results are unordered (ORDER BY defeats PK chunking), so the cursor only
            # moves when the whole window is in: a stop part-way re-reads the window. The
            # next result set is fetched and parsed while this one is typed and written.
            for page in read_ahead(client.bulk_pages(job, fields), "salesforce-bulk"):
                if _absent(spec, state, page, fields, report):
                    return
                yield dlt.mark.with_hints(arrow_page(page, kinds, unreadable, spec.sobject), hints)
                count += len(page)
                if not empty:  # the ids only serve to find vanished records
                    seen.update(_page_ids(page))
        else:
            held: list[bool] = []
            checked = _until_absent(
                read_ahead(
                    client.query_records(spec.sobject, list(fields), where, include_deleted=True),
                    "salesforce-rest",
                ),
                lambda page: _absent(spec, state, page, fields, report),
                held,
            )
            for page in _batched(checked):
                ids = _page_ids(page)
                if _repeats(ids, seen):
                    # A query cursor lists each record once; should one come twice (edited
                    # while read), this table's load merges after all: the newest wins.
                    hints = merge_hints
                yield dlt.mark.with_hints(arrow_page(page, kinds, unreadable, spec.sobject), hints)
                count += len(page)
                # Inclusive: rows sharing this stamp on the next page are re-read next time.
                state["cursor"] = page[-1]["SystemModstamp"]
            if held:  # a field left out of results: nothing after it, no reconciliation
                return
        # Rows a split query left for the next run (they changed while read) still exist.
        seen |= client.unsettled_ids
        gone: list[dict[str, Any]] = []
        if full:
            # A whole queryAll read lists every record Salesforce still has, binned or not.
            gone = _vanished(spec, seen, None, settings, state, now, soql_datetime(end), empty)
            deleted_cursor = soql_datetime(end)
        else:
            gone, deleted_cursor, gap = _purged_deletes(
                client, spec, start, end, now, seen, state.get("deleted_cursor")
            )
            if gap:
                # Kept until a listing completes: a stop before it leaves it for the next run.
                state[LOG_GAP] = True
                note = (
                    f"{spec.resource}: Salesforce's delete log cannot vouch for every "
                    "deletion since the last load (its earliestDateAvailable is later, the "
                    f"gap is over {DELETE_LOG_DAYS} days, or it refused the window); the ids "
                    "it lists are compared instead"
                )
                log.info(note)
                report.notes.append(note)
            if state.get(LOG_GAP) or reconcile_due(state, now, settings.reconcile_days):
                listed = _live_ids(client, spec.sobject)
                gone += _vanished(spec, seen, listed, settings, state, now, soql_datetime(end))
                state.pop(LOG_GAP, None)
        if gone:
            yield dlt.mark.with_hints(arrow_page(gone, kinds, sobject=spec.sobject), hints)
            count += len(gone)
        # Only now: a stop before this point asks the delete log for the same window again.
        state["deleted_cursor"] = deleted_cursor
        state["cursor"] = soql_datetime(end)
        lift(state, STOPPED)
        report.rows[spec.resource] = count
        for name, ids in sorted(unreadable.items()):
            report.problems.append(
                f"{spec.sobject}.{name}: {len(ids)} value(s) could not be read as a "
                f"{kinds[name]} and were left empty (the records are loaded, and quarantined "
                f"as warnings); correct them in Salesforce (record {ids[0]}"
                f"{' and others' if len(ids) > 1 else ''})"
            )
    except ApiAllocationReserveReached as err:
        if report.stopped is None:
            log.warning(str(err))
            report.stopped = str(err)
            report.stop_error = err
        what = "exhausted" if err.exhausted else "at the member's reserve"
        usage = f" ({err.used}/{err.maximum} requests)" if err.maximum else ""
        hold(
            state,
            STOPPED,
            f"the load stopped before it had read all of {spec.sobject}: the org's daily API "
            f"allocation is {what}{usage}; what was read is kept",
            "Nothing to fix: the next run after the 24-hour allocation has room again carries "
            "on from where this one stopped. To load more per day, lower "
            "connector.reserve_percent or raise the org's API allocation.",
        )
    except SalesforceApiError as err:
        if err.code == "INVALID_FIELD":
            # Field-level security revoked between describe and query: wait, as for describe.
            _hold_hidden(spec, state, [_named_field(err.full_message)], report)
            return
        raise err.on(spec.resource, spec.sobject) from None
    finally:
        report.api_used, report.api_max = client.api_used, client.api_max


def _targeted_rows(
    client: SalesforceClient,
    spec: ObjectSpec,
    fields: dict[str, str],
    columns: dict[str, dict[str, Any]],
    target: ObjectTargets,
    state: dict[str, Any],
    report: SyncReport,
) -> Iterator[Any]:
    """The records ``target`` names, typed and checked as a window read's rows are, plus
    tombstones for named deletions ``queryAll`` no longer shows (guarded, targeted.py).

    Neither cursor moves: the next window read still reads everything since the last one.
    """
    kinds = {name: column["data_type"] for name, column in columns.items()}
    unreadable_column = {"name": UNREADABLE_COLUMN, "data_type": "text", "nullable": True}
    hints = dlt.mark.make_hints(columns={**columns, UNREADABLE_COLUMN: unreadable_column})
    report.methods[spec.resource] = "ids"
    unreadable: dict[str, list[str]] = {}
    seen: set[str] = set()
    count = 0
    held: list[bool] = []
    checked = _until_absent(
        targeted_pages(client, spec.sobject, list(fields), target),
        lambda page: _absent(spec, state, page, fields, report),
        held,
    )
    for page in _batched(checked):
        yield dlt.mark.with_hints(arrow_page(page, kinds, unreadable, spec.sobject), hints)
        count += len(page)
        seen.update(_page_ids(page))
    if held:
        return
    seen |= client.unsettled_ids
    gone = deletions_to_apply(spec.resource, target, seen, client.settings.max_deleted_share, state)
    if gone:
        yield dlt.mark.with_hints(arrow_page(gone, kinds, sobject=spec.sobject), hints)
        count += len(gone)
    report.rows[spec.resource] = count
    for name, ids in sorted(unreadable.items()):
        report.problems.append(
            f"{spec.sobject}.{name}: {len(ids)} value(s) could not be read as a {kinds[name]} "
            "and were left empty (the records are loaded, and quarantined as warnings); "
            f"correct them in Salesforce (record {ids[0]}{' and others' if len(ids) > 1 else ''})"
        )


def _batched(
    pages: Iterator[list[dict[str, Any]]], records: int = BATCH_RECORDS
) -> Iterator[list[dict[str, Any]]]:
    """Consecutive query pages joined into batches of at least ``records`` (the last may be
    smaller); each batch ends where a page ends, so the cursor rule is unchanged.

    A polite stop at the API reserve first hands over the pages already read, so they are
    loaded and the cursor covers them, as when every page was yielded on its own.
    """
    batch: list[dict[str, Any]] = []
    try:
        for page in pages:
            batch.extend(page)
            if len(batch) >= records:
                yield batch
                batch = []
    except ApiAllocationReserveReached:
        if batch:
            yield batch
        raise
    if batch:
        yield batch


def _until_absent(
    pages: Iterator[list[dict[str, Any]]],
    absent: Callable[[list[dict[str, Any]]], bool],
    stopped: list[bool],
) -> Iterator[list[dict[str, Any]]]:
    """Query pages up to the first that leaves out a selected field (``_absent`` holds the
    object, and ``stopped`` says so): the complete pages before it are loaded and the cursor
    covers them; that page and the rest are read again once the field is back."""
    for page in pages:
        if page and absent(page):
            stopped.append(True)
            return
        yield page


def _repeats(ids: list[str], seen: set[str]) -> bool:
    """Whether a batch holds an id twice, or one an earlier batch of this read held; adds
    the batch's ids to ``seen`` (one pass over them)."""
    before = len(seen)
    seen.update(ids)
    return len(seen) - before != len(ids)


def _page_ids(page: list[dict[str, Any]] | pa.Table) -> list[str]:
    """The record ids on a page: REST pages are records, Bulk result sets Arrow tables."""
    if isinstance(page, pa.Table):
        return page.column("Id").to_pylist()
    return [row["Id"] for row in page]


def _named_field(detail: str) -> str:
    """The field an INVALID_FIELD message names ("No such column 'X' on entity ...")."""
    match = re.search(r"No such column '(\w+)'", detail)
    return match[1] if match else "a selected field"


def _fields_lost(
    spec: ObjectSpec,
    state: dict[str, Any],
    fields: dict[str, str],
    settings: SalesforceSettings,
    report: SyncReport,
    full_refresh: bool,
) -> bool:
    """Whether fields read at the last load are unreadable now, so nothing is read.

    Salesforce cannot tell a deleted field from one field-level security hides, and a
    merge of records without it would blank it in every record changed meanwhile. So the
    object waits, held, with its cursor where it was: once the field is back, the next run
    reads every record changed since, the field included. A field listed in
    ``removed_fields`` (or an explicit full refresh) accepts the loss.
    """
    accepted = {
        name.split(".", 1)[1]
        for name in settings.removed_fields
        if name.startswith(f"{spec.sobject}.")
    }
    before = state.get("fields") or {}
    lost = sorted(n for n in before if n not in fields and n not in accepted)
    if lost and not full_refresh:
        _hold_hidden(spec, state, lost, report)
        return True
    lift(state, FIELDS_HIDDEN)
    return False


def _absent(
    spec: ObjectSpec,
    state: dict[str, Any],
    page: list[dict[str, Any]] | pa.Table,
    fields: dict[str, str],
    report: SyncReport,
) -> bool:
    """Whether results leave out a selected field (held, as when describe does): loaded,
    the page would blank it in every record on it. Read from where the page began next."""
    present = set(page.column_names) if isinstance(page, pa.Table) else page[0]
    lost = sorted(name for name in fields if name not in present)
    if lost:
        _hold_hidden(spec, state, lost, report)
    return bool(lost)


def _hold_hidden(
    spec: ObjectSpec, state: dict[str, Any], lost: list[str], report: SyncReport
) -> None:
    names = ", ".join(f"{spec.sobject}.{n}" for n in lost)
    reason = (
        f"{len(lost)} field(s) read at the last load can no longer be read ({names}); "
        f"nothing of {spec.sobject} is loaded until they can"
    )
    hold(
        state,
        FIELDS_HIDDEN,
        reason,
        "Grant the integration user field-level security on them again: the next run then "
        "reads everything changed meanwhile. If they were deleted or hidden on purpose, "
        "list them under connector.removed_fields.",
    )
    report.problems.append(f"{spec.resource}: {reason}")
    log.warning("%s: %s", spec.resource, reason)


def _live_ids(client: SalesforceClient, sobject: str) -> set[str]:
    """Every id Salesforce lists as not deleted: an id-only query, 2,000 ids per request."""
    ids: set[str] = set()
    for page in client.query_pages(f"SELECT Id FROM {sobject}"):
        ids.update(str(r["Id"]) for r in page)
    return ids


def _vanished(
    spec: ObjectSpec,
    seen: set[str],
    listed: set[str] | None,
    settings: SalesforceSettings,
    state: dict[str, Any],
    now: datetime,
    stamp: str,
    empty: bool = False,
) -> list[dict[str, Any]]:
    """Tombstones for loaded live records Salesforce lists no more (guarded).

    ``listed`` is the id-only listing; None when ``seen`` is a whole queryAll read. Ids this
    run read are never tombstoned: a fresh row and a tombstone would race in the merge.
    ``empty``: this run found the table empty or absent already, so it is not asked again
    (opening the destination costs a tenth of a second or more).
    """
    loaded = set() if empty else loaded_live_ids(spec.resource)
    if loaded is None:  # nothing loaded before: nothing can have vanished
        state[LAST_RECONCILED] = now.isoformat(timespec="seconds")
        return []
    present = seen if listed is None else listed | seen
    vanished = sorted(i for i in loaded if i not in present)
    count = len(seen) if listed is None else len(listed)
    kept = guard(
        spec.resource, vanished, len(loaded), count, settings.max_deleted_share, state, now
    )
    return tombstones(kept, stamp)


def _purged_deletes(
    client: SalesforceClient,
    spec: ObjectSpec,
    start: datetime,
    end: datetime,
    now: datetime,
    seen: set[str],
    since: str | None,
) -> tuple[list[dict[str, Any]], str, bool]:
    """Deletes that queryAll can no longer show (emptied recycle bin, hard deletes):
    (tombstone rows, the delete-log cursor once they are loaded, whether the log has a gap).

    The getDeleted resource keeps 15 days of deletes. A record it lists that queryAll did not
    return becomes a tombstone row (Id, IsDeleted, SystemModstamp = deletedDate); the merge
    replaces the old row, so the person's other fields are cleared along with it.

    It works in whole minutes and refuses a window under one minute or starting more than
    30 days back (400 INVALID_REPLICATION_DATE): the window is widened to whole minutes, a
    window too short is not asked (the cursor stays, so the next run asks from there), and
    one older than the log keeps, or one the log says it no longer covers
    (``earliestDateAvailable``), is a gap the caller fills by comparing ids instead.
    """
    # Its own cursor: a run stopped part-way never asked getDeleted, so the next one asks
    # from where the last completed ask ended, not from the row cursor.
    begin = min(start, parse_sf_datetime(since)) if since else start
    begin = begin.replace(second=0, microsecond=0)
    until = end.replace(second=0, microsecond=0)
    if now - begin > timedelta(days=DELETE_LOG_DAYS):
        return [], soql_datetime(until), True
    if until - begin < timedelta(minutes=1):
        return [], soql_datetime(begin), False
    try:
        body = client.deleted(spec.sobject, soql_datetime(begin), soql_datetime(until))
    except SalesforceApiError as err:
        if err.code != "INVALID_REPLICATION_DATE":
            raise
        # Refused all the same (clocks that disagree): compare ids rather than fail the load.
        return [], soql_datetime(until), True
    earliest = body.get("earliestDateAvailable")
    gap = bool(earliest) and parse_sf_datetime(str(earliest)) > begin
    covered = body.get("latestDateCovered")
    cursor = min(until, parse_sf_datetime(str(covered))) if covered else until
    rows = []
    for entry in body.get("deletedRecords", []):
        if entry["id"] not in seen:
            seen.add(entry["id"])
            rows.append(
                {"Id": entry["id"], "IsDeleted": True, "SystemModstamp": entry["deletedDate"]}
            )
    return rows, soql_datetime(cursor), gap


def _bulk_job(
    client: SalesforceClient,
    spec: ObjectSpec,
    fields: dict[str, str],
    where: str,
    report: SyncReport,
    meanwhile: Callable[[], None] | None = None,
) -> str | None:
    """A completed Bulk query job for a large object's full load, or None to use REST.

    Bulk saves API requests on big reads (one result set per 50,000 rows instead of one
    page per 2,000). Whatever Bulk refuses or fails is read through REST instead.
    ``meanwhile`` runs while the job runs (``SalesforceClient.bulk_job``), if it waits.
    """
    threshold = client.settings.bulk_threshold
    if threshold is None:
        return None
    try:
        count = client.record_count(spec.sobject)
    except SalesforceApiError as err:
        # The count only chooses the API: its failure is no reason to fail the read.
        note = (
            f"{spec.resource}: Salesforce refused the record count of {spec.sobject} "
            f"({err.status} {err.code}); read through REST instead"
        )
        log.warning(note)
        report.notes.append(note)
        return None
    if count is None or count < threshold:
        return None
    soql = f"SELECT {', '.join(fields)} FROM {spec.sobject} WHERE {where}"
    try:
        return client.bulk_job(soql, include_deleted=True, meanwhile=meanwhile)
    except BulkQueryRejected as err:
        note = f"{spec.resource}: Bulk API query not possible ({err}); read through REST instead"
        log.warning(note)
        report.notes.append(note)
        return None


@dlt.source(name=SOURCE_NAME)
def npsp_source(
    settings: SalesforceSettings,
    credentials: Credentials,
    report: SyncReport | None = None,
    full_refresh: bool = False,
    clock: Callable[[], datetime] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    member: str | None = None,
    targets: Mapping[str, ObjectTargets] | None = None,
) -> Any:
    """One ``merge`` resource per object, keyed on ``Id``. Building it contacts nothing.

    ``report`` collects what the run noticed (missing objects, unreadable mapped fields,
    schema drift, a polite stop at the API reserve). ``clock`` and ``sleep`` exist for tests.
    ``member`` (the org id) names the member in the error when the load passes
    ``settings.load_deadline``, which every resource's requests share.
    ``targets`` (object API name → ids, ``targeted.plan_targets``): only those objects'
    resources, each reading just the named records (an object never read by a window yet
    reads its window instead).
    """
    session = _Session(settings, credentials, sleep, LoadDeadline(settings.load_deadline, member))
    run_report = report if report is not None else SyncReport()
    run_report.sessions.append(session)
    now = clock or (lambda: datetime.now(UTC))
    resources = []
    for spec in object_specs(settings):
        if targets is not None and spec.sobject not in targets:
            continue
        resources.append(
            dlt.resource(
                _object_rows,
                name=spec.resource,
                write_disposition="merge",
                primary_key="Id",
                # Parquet load files: DuckDB's default for row items is INSERT statements,
                # which made the load step four times slower than reading from Salesforce.
                file_format="parquet",
            )(
                session,
                spec,
                run_report,
                full_refresh,
                now,
                None if targets is None else targets[spec.sobject],
            )
        )
    return resources


def raw_pipeline(
    org_id: str, destination: AnyDestination | str, pipelines_dir: Path | str
) -> dlt.Pipeline:
    """The member's Salesforce pipeline (``hub_<org>_salesforce_npsp`` into ``raw_<org>``)."""
    return member_pipeline(org_id, SOURCE_NAME, destination, pipelines_dir)


def _connector_cause(err: BaseException) -> ConnectorError | None:
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, ConnectorError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def load_npsp(
    pipeline: dlt.Pipeline,
    settings: SalesforceSettings,
    credentials: Credentials,
    *,
    full_refresh: bool = False,
    raise_on_stop: bool = False,
    clock: Callable[[], datetime] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    member: str | None = None,
) -> tuple[Any, SyncReport]:
    """Run the source into ``pipeline``; returns (load info, report).

    A connector error inside dlt's extract step is re-raised as itself (Transient or
    Permanent), so the orchestrator can tell a retryable failure from one a person must fix.
    With ``raise_on_stop`` a polite stop at the API reserve raises ApiAllocationReserveReached
    *after* the data read so far has been loaded and the cursors saved.
    """
    report = SyncReport()
    source = npsp_source(
        settings,
        credentials,
        report=report,
        full_refresh=full_refresh,
        clock=clock,
        sleep=sleep,
        member=member,
    )
    try:
        info = pipeline.run(source)
    except PipelineStepFailed as err:
        cause = _connector_cause(err)
        if cause is not None:
            raise cause from err
        raise
    finally:
        report.close()
    if raise_on_stop and report.stop_error is not None:
        raise report.stop_error
    return info, report
