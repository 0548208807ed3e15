"""A local CiviCRM stand-in on loopback that speaks the APIv4 REST protocol.

Tests and the demo need a CiviCRM that behaves like a real one where it matters to a
connector, without a PHP stack: ``POST {site}/civicrm/ajax/api4/{Entity}/{action}`` with the
single form field ``params`` (a JSON string), ``X-Civi-Auth: Bearer <key>`` (and an optional
``X-Civi-Key`` site key), the web-service marker ``X-Requested-With: XMLHttpRequest``, the
response envelope ``{"values", "count", "countFetched", "countMatched", "entity", "action",
"version": 4}`` and CiviCRM's failure shapes (401 text/plain from authx, 400 SECURITY ALERT,
403/500 JSON with ``error_message``, 503 maintenance page). Like APIv4, ``get`` has no default
limit. Switches let tests inject faults and mutate data between or during requests.

The multi-call form is served as CRM_Api4_Page_AJAX serves it: ``POST {site}/civicrm/ajax/api4``
(no entity or action) with the form field ``calls`` = ``{index: [entity, action, params]}``;
the answer is keyed by the same indexes, each a result or ``{error_code, error_message,
status}``, and the HTTP status is 200 if any call succeeded, else the first failure's. A GET is
refused with 405, a missing ``calls`` or a call that is not ``[entity, action, params?]`` is a
fatal PHP error (500 page), and ``calls`` that is not JSON runs nothing and answers ``[]``.

Id-range conditions (``id >``, ``>=``, ``<``, ``<=``, ``=``, ``BETWEEN``) narrow the rows
scanned by bisecting the sorted ids, as a database uses its primary key: a count over a
range of 10,000 contacts must not cost a scan of all of them, or benchmarks of the connector's
range counts would measure this sandbox instead.

All data is synthetic (made-up names from short lists, seeded), never real people.
"""

from __future__ import annotations

import bisect
import json
import operator
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

UrlStyle = Literal["clean", "wordpress", "wordpress_admin", "standalone"]
API_PREFIX = "civicrm/ajax/api4/"
API_ROOT = "civicrm/ajax/api4"
TS_FORMAT = "%Y-%m-%d %H:%M:%S"

ALL_PERMISSIONS = frozenset(
    {
        "access CiviCRM",
        "authenticate with api key",
        "view all contacts",
        "access deleted contacts",
        "access all cases and activities",
        "access CiviContribute",
        "access all custom data",
    }
)
# Without 'access all custom data', a custom group is visible only where a CiviCRM ACL grants
# View on it (CRM_Core_Permission::customGroup); the sandbox's ACL grants none unless told.
CUSTOM_DATA = "access all custom data"

# The permission without which reading an entity is refused outright (403), as CiviCRM's
# entity permissions do (CRM_Core_Permission::getEntityActionPermissions). Contacts and what
# hangs off them need only 'access CiviCRM': without 'view all contacts' (or 'access deleted
# contacts') CiviCRM's ACL clause filters the rows instead, so the answer is quietly shorter,
# down to an empty list; ``_acl_hides`` models that.
ENTITY_PERMISSION = {
    "Case": "access all cases and activities",
    "CaseContact": "access all cases and activities",
    "Contribution": "access CiviContribute",
}
CONTACT_ENTITIES = ("Contact", "Email", "Phone", "Address")

OPTIONS: dict[str, dict[int, tuple[str, str]]] = {
    "case_type": {1: ("housing_support", "Housing support"), 2: ("money_advice", "Money advice")},
    "case_status": {1: ("Open", "Ongoing"), 2: ("Closed", "Resolved"), 3: ("Urgent", "Urgent")},
    "activity_type": {
        1: ("Meeting", "Meeting"),
        2: ("Phone Call", "Phone Call"),
        3: ("Advice Session", "Advice session"),
        4: ("Outcome Review", "Outcome review"),
    },
    "activity_status": {1: ("Scheduled", "Scheduled"), 2: ("Completed", "Completed")},
    "record_type": {
        1: ("Activity Assignees", "Activity Assignees"),
        2: ("Activity Source", "Activity Source"),
        3: ("Activity Targets", "Activity Targets"),
    },
    "contribution_status": {1: ("Completed", "Completed"), 2: ("Pending", "Pending")},
    "outcome": {
        1: ("tenancy_sustained", "Tenancy sustained"),
        2: ("debt_reduced", "Debt reduced"),
        3: ("felt_listened_to", "Felt listened to"),
    },
    "outcome_status": {
        1: ("achieved", "Achieved"),
        2: ("progressing", "Progressing"),
        3: ("not_achieved", "Not achieved"),
    },
}


@dataclass(frozen=True)
class FieldDef:
    """One field as ``getFields`` describes it; ``options`` names an OPTIONS list."""

    name: str
    data_type: str
    options: str | None = None
    custom_group: str | None = None
    since: tuple[int, int] | None = None  # CiviCRM version that added the field
    # The entity this field references (civicrm-core's ``entity_reference``): APIv4 joins it
    # implicitly, so ``activity_id.modified_date`` may be selected, filtered and sorted on.
    fk: str | None = None


ENTITY_FIELDS: dict[str, list[FieldDef]] = {
    "Contact": [
        FieldDef("id", "Integer"),
        FieldDef("contact_type", "String"),
        FieldDef("first_name", "String"),
        FieldDef("last_name", "String"),
        FieldDef("birth_date", "Date"),
        FieldDef("is_deleted", "Boolean"),
        FieldDef("created_date", "Timestamp"),
        FieldDef("modified_date", "Timestamp"),
        FieldDef("Consent.share_data", "Boolean", custom_group="Consent"),
    ],
    "Email": [
        FieldDef("id", "Integer"),
        FieldDef("contact_id", "Integer", fk="Contact"),
        FieldDef("is_primary", "Boolean"),
        FieldDef("email", "String"),
    ],
    "Phone": [
        FieldDef("id", "Integer"),
        FieldDef("contact_id", "Integer", fk="Contact"),
        FieldDef("is_primary", "Boolean"),
        FieldDef("phone", "String"),
    ],
    "Address": [
        FieldDef("id", "Integer"),
        FieldDef("contact_id", "Integer", fk="Contact"),
        FieldDef("is_primary", "Boolean"),
        FieldDef("postal_code", "String"),
    ],
    "Case": [
        FieldDef("id", "Integer"),
        FieldDef("case_type_id", "Integer", options="case_type"),
        FieldDef("status_id", "Integer", options="case_status"),
        FieldDef("start_date", "Date"),
        FieldDef("end_date", "Date"),
        FieldDef("is_deleted", "Boolean"),
        FieldDef("modified_date", "Timestamp"),
    ],
    "CaseContact": [
        FieldDef("id", "Integer"),
        FieldDef("case_id", "Integer", fk="Case"),
        FieldDef("contact_id", "Integer", fk="Contact"),
    ],
    "Activity": [
        FieldDef("id", "Integer"),
        FieldDef("activity_type_id", "Integer", options="activity_type"),
        FieldDef("activity_date_time", "Timestamp"),
        FieldDef("status_id", "Integer", options="activity_status"),
        FieldDef("duration", "Integer"),
        FieldDef("case_id", "Integer"),
        FieldDef("is_deleted", "Boolean"),
        FieldDef("modified_date", "Timestamp"),
        FieldDef("Outcomes.outcome", "Integer", options="outcome", custom_group="Outcomes"),
        FieldDef("Outcomes.status", "Integer", options="outcome_status", custom_group="Outcomes"),
        FieldDef("Outcomes.value", "Float", custom_group="Outcomes"),
    ],
    "ActivityContact": [
        FieldDef("id", "Integer"),
        FieldDef("activity_id", "Integer", fk="Activity"),
        FieldDef("contact_id", "Integer", fk="Contact"),
        FieldDef("record_type_id", "Integer", options="record_type"),
    ],
    "Contribution": [
        FieldDef("id", "Integer"),
        FieldDef("contact_id", "Integer", fk="Contact"),
        FieldDef("total_amount", "Money"),
        FieldDef("receive_date", "Timestamp"),
        FieldDef("contribution_status_id", "Integer", options="contribution_status"),
        FieldDef("modified_date", "Timestamp", since=(6, 9)),
    ],
}

# Entities whose changes bump the owning contact's modified_date (they have none of their own).
CONTACT_CHILDREN = ("Email", "Phone", "Address")

FIRST_NAMES = ("Ada", "Bo", "Cai", "Dee", "Eli", "Fen", "Gil", "Hal", "Ivo", "Jun", "Kit", "Lux")
LAST_NAMES = ("Ashdown", "Brackley", "Corrow", "Dunmere", "Elsby", "Fallow", "Grennan", "Holt")
POSTCODES = ("M14 5AB", "M15 6BB", "M20 1AA", "LS6 2QT", "B29 7SE", "NE4 9PL")


class ApiError(Exception):
    """Raised inside the sandbox to produce CiviCRM's JSON error envelope."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class _Fault:
    remaining: int
    status: int


@dataclass
class SandboxData:
    """In-memory tables: entity -> id -> record (option fields stored as option values)."""

    tables: dict[str, dict[int, dict[str, Any]]] = field(
        default_factory=lambda: {name: {} for name in ENTITY_FIELDS}
    )
    next_ids: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENTITY_FIELDS, 1))
    # Bumped by every change made through the sandbox: foreign-key indexes rebuild after it.
    version: int = 0

    def insert(self, entity: str, record: dict[str, Any]) -> int:
        self.version += 1
        new_id = self.next_ids[entity]
        self.next_ids[entity] = new_id + 1
        row = {f.name: None for f in ENTITY_FIELDS[entity]}
        row.update(record)
        row["id"] = new_id
        self.tables[entity][new_id] = row
        return new_id


class CiviCRMSandbox:
    """A threaded HTTP server on 127.0.0.1 holding synthetic CiviCRM data.

    Use as a context manager: ``with CiviCRMSandbox() as civi: civi.url``. ``url`` is the
    site URL a member would configure; ``url_style`` decides which URL shape it answers
    (others get a 404 page, as a site with a different CMS would).
    """

    def __init__(
        self,
        *,
        api_key: str = "sandbox-api-key",
        site_key: str | None = None,
        url_style: UrlStyle = "clean",
        version: str = "6.9.0",
        seed: int = 7,
        contacts: int = 20,
        activities_per_contact: int = 3,
        cases_per_contact: float = 0.5,
        contributions_per_contact: float = 0.5,
        clock_start: datetime = datetime(2025, 6, 1, 9, 0, 0),
        site_file: str | Path | None = None,
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.site_key = site_key
        self.url_style: UrlStyle = url_style
        self.version = version
        self.permissions: set[str] = set(ALL_PERMISSIONS)
        self.options: dict[str, dict[int, tuple[str, str]]] = {
            name: dict(values) for name, values in OPTIONS.items()
        }
        self.data = SandboxData()
        self._port = port
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        # One entry per API call answered: (entity, action, fields selected, values returned).
        self.answers: list[tuple[str, str, tuple[str, ...], int]] = []
        # One entry per HTTP request that passed authx: (method, "Entity.action" or "calls").
        self.http_requests: list[tuple[str, str]] = []
        # entity -> (data version, table size, sorted ids): the primary key's order
        self._id_order: dict[str, tuple[int, int, list[int]]] = {}
        self._lock = threading.RLock()
        self._faults: list[_Fault] = []
        self._scheduled: list[tuple[int, Callable[[CiviCRMSandbox], None]]] = []
        self._api_calls = 0
        self.latency = 0.0
        self._clock = clock_start
        self._server: ThreadingHTTPServer | None = None
        self._field_cache: dict[tuple[str, str], dict[str, FieldDef]] = {}
        # (entity, foreign key) -> (data version, table size, value -> ids): a database's index
        self._fk_index: dict[tuple[str, str], tuple[int, int, dict[Any, list[int]]]] = {}
        # entity -> ids a lost ACL or permission hides from ``get`` (None: every row)
        self._hidden: dict[str, set[int] | None] = {}
        # entity -> fields the API user may not see (see ``hide_fields``)
        self._hidden_fields: dict[str, set[str]] = {}
        # custom groups a CiviCRM ACL grants View on, for a user without CUSTOM_DATA
        self.acl_custom_groups: set[str] = set()
        self._thread: threading.Thread | None = None
        # Told of every change made through the API or the mutation methods, as a CiviCRM
        # extension (hook_civicrm_post) would be: ``notifier(entity, action, ids)``. The
        # demo sets a StandardWebhookSender's ``change`` here (sandboxes/webhooks.py).
        self.notifier: Callable[[str, str, list[int]], Any] | None = None
        if site_file is not None:
            self.load_site(Path(site_file))
            return
        generate(
            self,
            seed=seed,
            contacts=contacts,
            activities_per_contact=activities_per_contact,
            cases_per_contact=cases_per_contact,
            contributions_per_contact=contributions_per_contact,
        )

    def load_site(self, path: Path) -> None:
        """Serve a site's records from a JSON file instead of generated ones.

        The file holds ``{"version", "clock", "options": {list: {id: [name, label]}},
        "records": {Entity: [{"id": ..., field: value}]}}``; option fields hold option ids,
        as CiviCRM stores them. The demo's CiviCRM member is served this way.
        """
        body = json.loads(path.read_text(encoding="utf-8"))
        self.version = str(body.get("version", self.version))
        if body.get("clock"):
            self._clock = datetime.strptime(body["clock"], TS_FORMAT)
        for name, values in body.get("options", {}).items():
            self.options[name] = {int(k): (v[0], v[1]) for k, v in values.items()}
        for entity, rows in body.get("records", {}).items():
            if entity not in ENTITY_FIELDS:
                raise ValueError(f"{path}: unknown entity {entity!r}")
            table = self.data.tables[entity]
            for record in rows:
                row = {f.name: None for f in ENTITY_FIELDS[entity]}
                row.update(record)
                table[int(row["id"])] = row
            self.data.tables[entity] = dict(sorted(table.items()))
            self.data.version += 1
            self.data.next_ids[entity] = max(self.data.tables[entity], default=0) + 1

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> CiviCRMSandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def port(self) -> int:
        assert self._server is not None, "sandbox not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The site URL a member configures (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    # ----------------------------------------------------------------- clock
    def now(self) -> str:
        """Advance the sandbox clock by one second and return it (CiviCRM's format)."""
        with self._lock:
            self._clock += timedelta(seconds=1)
            return self._clock.strftime(TS_FORMAT)

    # ----------------------------------------------------------------- switches
    def fail_next(self, count: int, status: int = 500) -> None:
        """The next ``count`` API requests fail with ``status`` (500 JSON or 503 page)."""
        with self._lock:
            self._faults.append(_Fault(count, status))

    def slow_down(self, seconds: float) -> None:
        """Every later API answer comes ``seconds`` late (each one still in time on its own),
        so a test can show that only a load's overall deadline stops a long load."""
        with self._lock:
            self.latency = seconds

    def after_requests(self, count: int, action: Callable[[CiviCRMSandbox], None]) -> None:
        """Run ``action(sandbox)`` once, just before answering the ``count``-th next request.

        This is how a test mutates data *during* a connector run (between two pages).
        """
        with self._lock:
            self._scheduled.append((self._api_calls + count, action))

    def revoke_permission(self, permission: str) -> None:
        with self._lock:
            self.permissions.discard(permission)

    def grant_permission(self, permission: str) -> None:
        with self._lock:
            self.permissions.add(permission)

    def hide(self, entity: str, ids: Iterable[int] | None = None) -> None:
        """``get`` on ``entity`` stops returning these rows (all when ``ids`` is None).

        This is how CiviCRM answers when an ACL or permission changes under the API user:
        an empty or shorter list and a smaller count, not an error (see DESIGN "Known
        pitfalls"). The rows still exist; ``unhide`` brings them back.
        """
        with self._lock:
            self._hidden[entity] = None if ids is None else set(ids)

    def unhide(self, entity: str) -> None:
        with self._lock:
            self._hidden.pop(entity, None)

    def hide_fields(self, entity: str, names: Iterable[str]) -> None:
        """The API user may no longer see these fields of ``entity`` (``Group.field`` for
        custom ones), as APIv4 treats them (civicrm-core ``Api4SelectQuery``/``Api4Query``):

        - ``getFields`` (permissions are always checked over REST) does not list them;
        - ``get`` leaves them out of ``select`` without a word: the rows simply lack them;
        - a core field hidden by the permission in its spec (``addSpecField`` marks it
          unauthorized) is silently dropped from ``where`` and refused in ``orderBy``;
        - a custom field whose group the user's ACL does not grant is not in the spec at
          all, so ``where`` and ``orderBy`` on it fail with "Invalid field".

        Revoking 'access all custom data' hides every custom field the same way, except in
        groups listed in ``acl_custom_groups``. ``show_fields`` brings them back.
        """
        with self._lock:
            self._hidden_fields.setdefault(entity, set()).update(names)

    def show_fields(self, entity: str | None = None) -> None:
        """Undo ``hide_fields`` for one entity (every entity when None)."""
        with self._lock:
            if entity is None:
                self._hidden_fields.clear()
            else:
                self._hidden_fields.pop(entity, None)

    def set_version(self, version: str) -> None:
        with self._lock:
            self.version = version

    # ----------------------------------------------------------------- mutations
    def add_contact(self, first_name: str = "Nia", last_name: str = "Quell", **extra: Any) -> int:
        """Insert an Individual (with a primary email) and return its id."""
        with self._lock:
            ts = self.now()
            record = {
                "contact_type": "Individual",
                "first_name": first_name,
                "last_name": last_name,
                "birth_date": "1990-01-01",
                "is_deleted": False,
                "created_date": ts,
                "modified_date": ts,
                "Consent.share_data": True,
            }
            record.update(extra)
            cid = self.data.insert("Contact", record)
            self.data.insert(
                "Email",
                {"contact_id": cid, "is_primary": True, "email": f"person{cid}@example.org"},
            )
            self._notify("Contact", "create", [cid])
            return cid

    def add_activity(self, contact_id: int, **extra: Any) -> int:
        with self._lock:
            ts = self.now()
            record = {
                "activity_type_id": 3,
                "activity_date_time": ts,
                "status_id": 2,
                "duration": 30,
                "is_deleted": False,
                "modified_date": ts,
            }
            record.update(extra)
            aid = self.data.insert("Activity", record)
            self.data.insert(
                "ActivityContact",
                {"activity_id": aid, "contact_id": contact_id, "record_type_id": 3},
            )
            self._notify("Activity", "create", [aid])
            return aid

    def insert(self, entity: str, **record: Any) -> int:
        """Insert any record as given (bumps modified_date where the entity has one)."""
        with self._lock:
            if _has_field(entity, "modified_date", self.version) and "modified_date" not in record:
                record["modified_date"] = self.now()
            new_id = self.data.insert(entity, record)
            self._touch_owner(entity, record)
            self._notify(entity, "create", [new_id])
            return new_id

    def edit(self, entity: str, record_id: int, **changes: Any) -> None:
        """Change a record as CiviCRM would: modified_date moves to now (or the owner's)."""
        with self._lock:
            self.data.version += 1
            row = self.data.tables[entity][record_id]
            row.update(changes)
            if "modified_date" in row and "modified_date" not in changes:
                row["modified_date"] = self.now()
            self._touch_owner(entity, row)
            self._notify(entity, "update", [record_id])

    def set_modified(self, entity: str, ids: Iterable[int], timestamp: str) -> None:
        """Give several records the same modified_date (CiviCRM has one-second resolution)."""
        with self._lock:
            for record_id in ids:
                self.data.tables[entity][record_id]["modified_date"] = timestamp

    def trash_contact(self, contact_id: int) -> None:
        """Move a contact to the trash (is_deleted=1), which bumps its modified_date."""
        self.edit("Contact", contact_id, is_deleted=True)

    def hard_delete(self, entity: str, record_id: int) -> None:
        """Delete a record for good; deleting a contact also deletes what hangs off it."""
        with self._lock:
            self.data.version += 1
            row = self.data.tables[entity].pop(record_id)
            self._touch_owner(entity, row)
            if entity in CONTACT_CHILDREN:
                self._notify("Contact", "update", [row["contact_id"]])
            else:
                self._notify(entity, "delete", [record_id])
            if entity == "Contact":
                for child in (*CONTACT_CHILDREN, "CaseContact", "ActivityContact", "Contribution"):
                    table = self.data.tables[child]
                    for cid in [k for k, v in table.items() if v.get("contact_id") == record_id]:
                        del table[cid]

    def merge_contacts(self, keep: int, other: int) -> None:
        """Merge contact ``other`` into ``keep`` as CiviCRM's dedupe merge does.

        CRM_Dedupe_Merger moves what references the other contact with plain UPDATEs of
        ``contact_id`` (ids kept): activity and case roles, e-mails, phones, addresses,
        contributions. The activities and cases themselves are not touched, so their
        ``modified_date`` stays; nor, here, is ``keep`` (the worst case for a connector that
        follows parents). The other contact goes to the trash, which bumps its own.
        """
        with self._lock:
            self.data.version += 1
            for child in (*CONTACT_CHILDREN, "CaseContact", "ActivityContact", "Contribution"):
                for row in self.data.tables[child].values():
                    if row.get("contact_id") == other:
                        row["contact_id"] = keep
            row = self.data.tables["Contact"][other]
            row["is_deleted"] = True
            row["modified_date"] = self.now()

    def _notify(self, entity: str, action: str, ids: Iterable[int]) -> None:
        """Tell the notifier (if any) of a change; a contact's e-mail, phone or address
        changing is reported as its contact's update, as CiviCRM's own hooks see it."""
        if self.notifier is None:
            return
        ids = list(ids)
        if entity in CONTACT_CHILDREN:
            owners = [self.data.tables[entity].get(i, {}).get("contact_id") for i in ids]
            entity, action, ids = "Contact", "update", [o for o in owners if o is not None]
        if ids:
            self.notifier(entity, action, ids)

    def _touch_owner(self, entity: str, row: dict[str, Any]) -> None:
        if entity in CONTACT_CHILDREN and row.get("contact_id") in self.data.tables["Contact"]:
            self.data.tables["Contact"][row["contact_id"]]["modified_date"] = self.now()

    # ----------------------------------------------------------------- API
    def handle(self, entity: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """Answer one APIv4 call the way ``civicrm_api4()`` would (raises ApiError).

        Permissions are always checked: CiviCRM's AJAX page forces ``checkPermissions`` on
        for every REST call, whatever the client sends. An explicit ``join`` is not supported;
        implicit joins through reference fields (``activity_id.modified_date``) are.
        """
        with self._lock:
            self.requests.append((entity, action, params))
            if entity == "Domain" and action == "get":  # Civi/Api4/Domain.php
                if "access CiviCRM" not in self.permissions:
                    raise ApiError(403, "Authorization failed")
                return self._domain(params)
            if entity not in ENTITY_FIELDS:
                # System has check, flush and getFields in civicrm-core, and no get.
                raise ApiError(500, f"Api {entity} {action} version 4 does not exist.")
            if "access CiviCRM" not in self.permissions:
                raise ApiError(403, "Authorization failed")
            # getFields is a 'meta' action: 'access CiviCRM' is enough (AbstractAction::
            # getPermissions); the entity permission guards its records.
            needed = ENTITY_PERMISSION.get(entity) if action != "getFields" else None
            if needed and needed not in self.permissions:
                raise ApiError(403, f"Authorization failed: missing permission '{needed}'")
            if action == "getFields":
                result = self._get_fields(entity, params)
            elif action == "get":
                result = self._get(entity, params)
            elif action in ("create", "update", "delete"):
                result = self._write(entity, action, params)
            else:
                raise ApiError(500, f"Api4 {entity} {action} not supported by the sandbox")
            selected = tuple(params.get("select") or ())
            self.answers.append((entity, action, selected, len(result["values"])))
            return result

    def handle_calls(self, calls: dict[str, Any]) -> tuple[int, Any]:
        """Answer a multi-call request as CRM_Api4_Page_AJAX does: (HTTP status, body).

        Each call runs on its own; its error is its entry. The status is 200 once any call
        succeeded, else the first failing call's (no call at all: 200).
        """
        answers: dict[str, Any] = {}
        status: int | None = None
        for index, call in calls.items():
            entity, action, params = call[0], call[1], call[2] if len(call) > 2 else {}
            try:
                if len(call) > 3 and call[3] is not None:
                    raise ApiError(500, "an index in a multi-call is not supported by the sandbox")
                answers[index] = self.handle(str(entity), str(action), dict(params or {}))
                status = 200
            except ApiError as exc:
                status = status or exc.status
                answers[index] = {
                    "error_code": 0,
                    "error_message": exc.message,
                    "status": exc.status,
                }
        return status or 200, _php_array(answers)

    def _fields(self, entity: str) -> dict[str, FieldDef]:
        key = (entity, self.version)
        cached = self._field_cache.get(key)
        if cached is None:
            cached = {
                f.name: f for f in ENTITY_FIELDS[entity] if _has_field(entity, f.name, self.version)
            }
            self._field_cache[key] = cached
        return cached

    def _get_fields(self, entity: str, params: dict[str, Any]) -> dict[str, Any]:
        """Fields as APIv4 lists them; ``options`` as ``loadOptions`` asks.

        ``loadOptions`` false or absent: ``options`` is just whether the field has a list;
        true: ``{id: label}``; a list of properties (``["name", "label"]``): one dict per
        option with ``id`` and those properties.
        """
        load = params.get("loadOptions", False)
        values = []
        for f in self._fields(entity).values():
            if self._unseen(entity, f):
                continue  # BasicGetFieldsAction/SpecGatherer: not listed to this user
            item: dict[str, Any] = {
                "name": f.name,
                "data_type": f.data_type,
                "type": "Custom" if f.custom_group else "Field",
                "custom_group": f.custom_group,
                "label": f.name.split(".")[-1].replace("_", " ").title(),
            }
            choices = self.options[f.options] if f.options else {}
            if not f.options or not load:
                item["options"] = bool(f.options)
            elif isinstance(load, list):
                props = {"name": 0, "label": 1}
                item["options"] = [
                    {"id": k, **{p: v[props[p]] for p in load if p in props}}
                    for k, v in choices.items()
                ]
            else:
                item["options"] = {str(k): v[1] for k, v in choices.items()}
            values.append(item)
        return _envelope(entity, "getFields", values, len(values))

    def _unseen(self, entity: str, fdef: FieldDef) -> str | None:
        """Why the API user may not see a field (None: it may).

        "unknown": a custom field whose group neither 'access all custom data' nor an ACL
        grants; SpecGatherer leaves it out of the spec. "unauthorized": a field whose spec
        names a permission the user lacks; Api4Query.addSpecField marks it FALSE.
        """
        hidden = fdef.name in self._hidden_fields.get(entity, ())
        if fdef.custom_group:
            granted = (
                CUSTOM_DATA in self.permissions
                or "administer CiviCRM" in self.permissions
                or fdef.custom_group in self.acl_custom_groups
            )
            return "unknown" if hidden or not granted else None
        return "unauthorized" if hidden else None

    def _unseen_name(self, entity: str, name: str) -> str | None:
        """``_unseen`` for a name as a request spells it (option suffix allowed); a name
        with no field at all is left for ``_resolve`` to refuse. A field reached through an
        implicit join (``contact_id.is_deleted``) is the joined entity's, seen or not as
        there."""
        base = name.partition(":")[0]
        fdef = self._fields(entity).get(base)
        if fdef is None:
            joined = self._join(entity, base)
            return None if joined is None else self._unseen_name(*joined)
        return self._unseen(entity, fdef)

    def _hides_fields(self) -> bool:
        return bool(self._hidden_fields) or CUSTOM_DATA not in self.permissions

    def _visible_where(self, entity: str, where: list[Any]) -> list[Any]:
        """``where`` as APIv4 applies it for this user: a clause on an unauthorized field is
        silently ignored (Api4Query.treeWalkClauses catches UnauthorizedException), one on
        a field not in the user's spec fails, an emptied branch is skipped."""
        kept: list[Any] = []
        for clause in where:
            if not isinstance(clause, list) or not clause:
                kept.append(clause)
                continue
            if clause[0] in ("AND", "OR", "NOT") and len(clause) > 1:
                if isinstance(clause[1], list):
                    inner = self._visible_where(entity, clause[1])
                    if inner:
                        kept.append([clause[0], inner, *clause[2:]])
                    continue
                kept.append(clause)
                continue
            why = self._unseen_name(entity, str(clause[0]))
            if why == "unknown":
                raise ApiError(500, f"Invalid field '{str(clause[0]).partition(':')[0]}'")
            if why is None:
                kept.append(clause)
        return kept

    def _resolve(self, entity: str, name: str) -> tuple[FieldDef, str | None]:
        base, _, suffix = name.partition(":")
        fields = self._fields(entity)
        if base not in fields:
            joined = self._join(entity, base)
            if joined is None:
                raise ApiError(500, f"Invalid field '{base}' for {entity}")
            target, rest = joined
            return self._resolve(target, f"{rest}:{suffix}" if suffix else rest)
        fdef = fields[base]
        if suffix and (not fdef.options or suffix not in ("name", "label")):
            raise ApiError(500, f"Invalid option suffix '{suffix}' on {entity}.{base}")
        return fdef, suffix or None

    def _join(self, entity: str, name: str) -> tuple[str, str] | None:
        """(referenced entity, its field) for an implicit join ``fk_field.field``, else None.

        APIv4 joins a field that references another entity (``entity_reference`` in
        civicrm-core's schema) when a name goes through it, in select, where and orderBy
        alike; a LEFT JOIN, so a missing record gives null. Fields that reference nothing
        (and entities without such a field) have no join: an error, as in CiviCRM.
        """
        head, dot, rest = name.partition(".")
        fdef = self._fields(entity).get(head)
        if not dot or fdef is None or fdef.fk is None:
            return None
        return fdef.fk, rest

    def _value(self, entity: str, row: dict[str, Any], name: str) -> Any:
        base = name.partition(":")[0]
        if base not in self._fields(entity):
            joined = self._join(entity, base)
            if joined is not None:
                head, _, rest = name.partition(".")
                target = self.data.tables[joined[0]].get(row.get(head))
                return None if target is None else self._value(joined[0], target, rest)
        fdef, suffix = self._resolve(entity, name)
        raw = row.get(fdef.name)
        if suffix and raw is not None:
            assert fdef.options is not None
            pair = self.options[fdef.options].get(int(raw))
            return None if pair is None else pair[0 if suffix == "name" else 1]
        return raw

    def _domain(self, params: dict[str, Any]) -> dict[str, Any]:
        """``Domain.get``: the one domain, with the database's CiviCRM version."""
        row = {"id": 1, "name": "Default Domain Name", "version": self.version}
        for name in params.get("select") or []:
            if name not in row and name != "row_count":
                raise ApiError(500, f"Invalid field '{name}' in select")
        select = [n for n in params.get("select") or row if n != "row_count"]
        values = [{"id": 1, **{n: row[n] for n in select}}]
        return _envelope("Domain", "get", values, len(values))

    def _acl_hides(self, entity: str, row: dict[str, Any]) -> bool:
        """Whether CiviCRM's ACL clauses leave ``row`` out for the API user's permissions.

        A missing permission here is never an error: the row is simply not in the answer
        (CRM_Contact_BAO_Contact_Permission, CRM_Activity_BAO_Activity's ACL clause).
        """
        if entity in CONTACT_ENTITIES and "view all contacts" not in self.permissions:
            return True
        if entity == "Contact" and "access deleted contacts" not in self.permissions:
            return bool(row.get("is_deleted"))
        if entity in ("Activity", "ActivityContact") and (
            "access all cases and activities" not in self.permissions
        ):
            activity = (
                row
                if entity == "Activity"
                else self.data.tables["Activity"].get(row.get("activity_id"), {})
            )
            return activity.get("case_id") is not None  # case activities need case access
        return False

    def _get(self, entity: str, params: dict[str, Any]) -> dict[str, Any]:
        where = params.get("where", [])
        if not isinstance(where, list):
            raise ApiError(500, "where must be an array")
        live_only = False
        if entity == "Contact" and not _mentions(where, "is_deleted"):
            live_only = True  # APIv4 hides trashed contacts unless asked about is_deleted
        asked = params.get("select") or []
        order = params.get("orderBy") or {}
        if self._hides_fields():
            # Fields the user may not see leave select without a word (Api4SelectQuery's
            # buildSelectClause drops them); orderBy on one fails, where depends on why.
            explicit = bool(asked)
            asked = [n for n in asked if n == "row_count" or not self._unseen_name(entity, n)]
            if explicit and not asked:
                asked = ["id"]  # the id is always selected
            for key in order:
                if self._unseen_name(entity, key):
                    raise ApiError(500, f"Invalid field '{str(key).partition(':')[0]}'")
            where = self._visible_where(entity, where)
        self._validate_where(entity, where)
        table = self.data.tables[entity]
        want_count = "row_count" in asked
        only_count = asked == ["row_count"]  # DAOGetAction: COUNT(*) only, no rows fetched
        select = [n for n in asked if n != "row_count"] or [
            f.name
            for f in self._fields(entity).values()
            if not f.custom_group and not self._unseen(entity, f)
        ]
        for name in select:
            self._resolve(entity, name)
        for key in order:
            self._resolve(entity, key)
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 0)

        hidden = self._hidden.get(entity, set())
        acl = not self.permissions >= ALL_PERMISSIONS  # the ACL filters only when one is missing
        keyset = list(order) == ["id"] and str(order["id"]).upper() == "ASC" and not want_count
        # Only the rows inside the id bounds are looked at (a primary-key range scan), so
        # the clauses that set those bounds need not be tested again on every row.
        candidates = self._candidates(entity, where)
        matches = self._predicate(entity, [c for c in where if not _is_id_bound(c)])

        def keep(r: dict[str, Any]) -> bool:
            if hidden is None or (hidden and r["id"] in hidden):
                return False
            if acl and self._acl_hides(entity, r):
                return False
            return not (live_only and r.get("is_deleted")) and matches(r)

        if only_count:
            matched = sum(1 for rid in candidates if keep(table[rid]))
            envelope = _envelope(entity, "get", [], matched)
            envelope["count"] = matched  # Result::count() is the row count when it was asked
            return envelope

        if keyset:
            # Keyset fast path: lets benchmarks page through hundreds of thousands of rows
            # without a full scan per page.
            rows = []
            for rid in candidates:
                row = table[rid]
                if keep(row):
                    rows.append(row)
                    if limit and len(rows) >= offset + limit:
                        break
            matched = None if limit else len(rows)
        else:
            rows = [table[rid] for rid in candidates if keep(table[rid])]
            for key, direction in reversed(list(order.items())):
                rows.sort(
                    key=lambda r, k=key: _sort_key(self._value(entity, r, k)),
                    reverse=str(direction).upper() == "DESC",
                )
            matched = len(rows) if (want_count or not limit) else None
        rows = rows[offset : offset + limit] if limit else rows[offset:]
        plain = [n for n in select if ":" not in n and self._resolve(entity, n)[0].name == n]
        if len(plain) == len(select):  # no option suffix: read the stored values directly
            values = [{name: r.get(name) for name in select} for r in rows]
        else:
            values = [{name: self._value(entity, r, name) for name in select} for r in rows]
        for v, r in zip(values, rows, strict=True):
            v.setdefault("id", r["id"])
        return _envelope(entity, "get", values, matched)

    def _write(self, entity: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """APIv4 ``create`` (``values``), ``update`` (``values`` for the rows ``where``
        matches) and ``delete`` (the rows ``where`` matches), as a CiviCRM screen or an
        integration changes records; each change goes to the notifier like a hook's."""
        values = params.get("values") or {}
        if not isinstance(values, dict):
            raise ApiError(500, "values must be an object")
        unknown = sorted(set(values) - set(self._fields(entity)) - {"id"})
        if unknown:
            raise ApiError(500, f"Invalid field '{unknown[0]}'")
        if action == "create":
            new_id = self.insert(entity, **values)
            return _envelope(entity, action, [dict(self.data.tables[entity][new_id])], 1)
        where = params.get("where") or []
        if not where:
            raise ApiError(500, f'Parameter "where" is required for {entity}.{action}')
        self._validate_where(entity, where)
        match = self._predicate(entity, where)
        ids = [i for i, row in self.data.tables[entity].items() if match(row)]
        out = []
        for record_id in ids:
            if action == "update":
                self.edit(entity, record_id, **{k: v for k, v in values.items() if k != "id"})
                out.append(dict(self.data.tables[entity][record_id]))
            else:
                self.hard_delete(entity, record_id)
                out.append({"id": record_id})
        return _envelope(entity, action, out, len(out))

    def _sorted_ids(self, entity: str) -> list[int]:
        """The table's ids in order, rebuilt only after an insert or a delete."""
        table = self.data.tables[entity]
        built = self._id_order.get(entity)
        if built is None or built[:2] != (self.data.version, len(table)):
            built = (self.data.version, len(table), sorted(table))
            self._id_order[entity] = built
        return built[2]

    def _candidates(self, entity: str, where: list[Any]) -> list[int]:
        """Sorted ids that may match: from a foreign-key index or the primary key, cut to
        the top-level id bounds by bisection. Every clause is still tested on each row."""
        ids = self._indexed_ids(entity, where)
        if ids is None:
            ids = self._sorted_ids(entity)
        lo, hi = _id_bounds(where)
        if lo is None and hi is None:
            return ids
        start = bisect.bisect_left(ids, lo) if lo is not None else 0
        end = bisect.bisect_right(ids, hi) if hi is not None else len(ids)
        return ids[start:end]

    def _indexed_ids(self, entity: str, where: list[Any]) -> list[int] | None:
        """Sorted candidate ids for a top-level ``[fk, "IN", [ids]]`` clause, from an index.

        MySQL answers ``contact_id IN (...)`` from an index; without one, reading the e-mails
        of 200,000 contacts page by page scanned the whole table per page. Candidates still
        pass ``keep`` (every clause), so the index only narrows, never decides.
        """
        for clause in where:
            if (
                isinstance(clause, list)
                and len(clause) == 3
                and clause[0] != "id"
                and str(clause[0]).endswith("_id")
                and str(clause[1]).upper() == "IN"
                and isinstance(clause[2], list)
                and all(type(v) is int for v in clause[2])
            ):
                key = (entity, str(clause[0]))
                table = self.data.tables[entity]
                built = self._fk_index.get(key)
                if built is None or built[:2] != (self.data.version, len(table)):
                    index: dict[Any, list[int]] = {}
                    for rid, row in table.items():
                        index.setdefault(row.get(key[1]), []).append(rid)
                    built = (self.data.version, len(table), index)
                    self._fk_index[key] = built
                return sorted(i for v in set(clause[2]) for i in built[2].get(v, ()))
        return None

    def _validate_where(self, entity: str, where: list[Any]) -> None:
        """Bad field names fail even when no row would be compared, as in CiviCRM."""
        for clause in where:
            if not isinstance(clause, list) or not clause:
                raise ApiError(500, f"Invalid where clause {clause!r}")
            if clause[0] in ("AND", "OR", "NOT"):
                self._validate_where(entity, clause[1])
            else:
                self._resolve(entity, str(clause[0]))

    def _match(self, entity: str, row: dict[str, Any], where: list[Any]) -> bool:
        return all(self._clause(entity, row, c) for c in where)

    def _predicate(self, entity: str, where: list[Any]) -> Callable[[dict[str, Any]], bool]:
        """``where`` as one function of a row, resolved once per request, not once per row.

        Same answers as ``_match`` (the plain cases are specialised, the rest call it), so
        a 200,000-row page costs what a database's scan would relative to its other work.
        """
        tests = [self._clause_test(entity, c) for c in where]

        def match(row: dict[str, Any]) -> bool:
            for test in tests:  # noqa: SIM110 (a loop: all() with a generator is slower here)
                if not test(row):
                    return False
            return True

        return match

    def _clause_test(self, entity: str, clause: Any) -> Callable[[dict[str, Any]], bool]:
        def generic(row: dict[str, Any]) -> bool:
            return self._clause(entity, row, clause)

        if not isinstance(clause, list) or len(clause) != 3 or clause[0] in ("AND", "OR", "NOT"):
            return generic
        fdef, suffix = self._resolve(entity, str(clause[0]))
        if suffix or fdef.name != clause[0]:  # an option suffix or a joined field
            return generic
        name, op, arg = fdef.name, str(clause[1]).upper(), clause[2]
        if op == "=" and isinstance(arg, str) and fdef.data_type in _TEXT_TYPES:
            return lambda row: row.get(name) == arg
        if op == "IN" and isinstance(arg, list) and arg and all(type(a) is bool for a in arg):
            wanted = set(arg)
            return lambda row: (v := row.get(name)) is not None and bool(v) in wanted
        if (
            op == "BETWEEN"
            and fdef.data_type == "Integer"
            and isinstance(arg, list)
            and len(arg) == 2
            and all(type(a) is int for a in arg)
        ):
            low, high = arg
            return lambda row: type(v := row.get(name)) is int and low <= v <= high
        compare = _COMPARE.get(op)
        if compare is not None and type(arg) is int and fdef.data_type == "Integer":
            return lambda row: type(v := row.get(name)) is int and compare(v, arg)
        if compare is not None and isinstance(arg, str) and fdef.data_type in _TEXT_TYPES:

            def text(row: dict[str, Any]) -> bool:
                v = row.get(name)
                return compare(v, arg) if type(v) is str else generic(row)

            return text
        return generic

    def _clause(self, entity: str, row: dict[str, Any], clause: Any) -> bool:
        if not isinstance(clause, list) or not clause:
            raise ApiError(500, f"Invalid where clause {clause!r}")
        head = clause[0]
        if head in ("AND", "OR", "NOT"):
            parts = clause[1]
            if head == "AND":
                return all(self._clause(entity, row, p) for p in parts)
            if head == "OR":
                return any(self._clause(entity, row, p) for p in parts)
            return not all(self._clause(entity, row, p) for p in parts)
        op = str(clause[1]).upper() if len(clause) > 1 else "="
        value = self._value(entity, row, head)
        arg = clause[2] if len(clause) > 2 else None
        if op == "IS NULL":
            return value is None
        if op == "IS NOT NULL":
            return value is not None
        if op in ("IN", "NOT IN"):
            if not isinstance(arg, list):
                raise ApiError(500, f"{op} needs an array")
            hit = _is_in(value, arg)
            return hit if op == "IN" else not hit
        if op in ("BETWEEN", "NOT BETWEEN"):
            if not isinstance(arg, list) or len(arg) != 2:
                raise ApiError(500, f"{op} needs an array of two values")
            if value is None:
                return False
            inside = _sort_key(arg[0]) <= _sort_key(value) <= _sort_key(arg[1])
            return inside if op == "BETWEEN" else not inside
        if op == "=":
            return _eq(value, arg)
        if op in ("!=", "<>"):
            return not _eq(value, arg)
        if value is None or arg is None:
            return False
        a, b = _sort_key(value), _sort_key(arg)
        if op == ">":
            return a > b
        if op == ">=":
            return a >= b
        if op == "<":
            return a < b
        if op == "<=":
            return a <= b
        raise ApiError(500, f"Illegal operator '{op}'")

    # ----------------------------------------------------------------- HTTP
    def _route(self, raw_path: str) -> tuple[str, str] | None:
        """(entity, action) if the URL is an API4 URL in this site's style, else None."""
        parts = urlsplit(raw_path)
        query = parse_qs(parts.query)
        q = (query.get("q") or [""])[0].strip("/")
        if self.url_style in ("clean", "standalone"):
            route = parts.path.strip("/")
        elif self.url_style == "wordpress":
            if query.get("civiwp") != ["CiviCRM"] or parts.path not in ("", "/"):
                return None
            route = q
        else:
            if parts.path != "/wp-admin/admin.php" or query.get("page") != ["CiviCRM"]:
                return None
            route = q
        if route == API_ROOT:
            return "", ""  # the multi-call form: entity and action travel in ``calls``
        if not route.startswith(API_PREFIX):
            return None
        pieces = route[len(API_PREFIX) :].split("/")
        if len(pieces) != 2 or not all(pieces):
            return None
        return pieces[0], pieces[1]

    def _pop_fault(self) -> int | None:
        with self._lock:
            self._api_calls += 1
            due = [s for s in self._scheduled if s[0] <= self._api_calls]
            self._scheduled = [s for s in self._scheduled if s[0] > self._api_calls]
            for _, action in due:
                action(self)
            for fault in self._faults:
                if fault.remaining > 0:
                    fault.remaining -= 1
                    return fault.status
            return None


def _has_field(entity: str, name: str, version: str) -> bool:
    for f in ENTITY_FIELDS.get(entity, []):
        if f.name == name:
            return f.since is None or _version_tuple(version) >= f.since
    return False


def _version_tuple(version: str) -> tuple[int, ...]:
    out = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        out.append(int(digits or 0))
    return tuple(out)


def _eq(value: Any, arg: Any) -> bool:
    if isinstance(value, bool) or isinstance(arg, bool):
        return value is not None and arg is not None and bool(value) == bool(arg)
    if isinstance(value, int | float) and isinstance(arg, int | float | str):
        try:
            return float(value) == float(arg)
        except ValueError:
            return False
    return value == arg


_TEXT_TYPES = frozenset({"String", "Date", "Timestamp"})
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_INT_SETS: dict[int, tuple[list[Any], frozenset[int]]] = {}


def _is_in(value: Any, arg: list[Any]) -> bool:
    """``value IN arg`` as ``_eq`` decides it; a list of plain ints (ids) is looked up in a
    set made once per list, so ``contact_id IN [1,000 ids]`` does not scan the list per row."""
    if type(value) is int and arg and all(type(a) is int for a in arg[:1]):
        cached = _INT_SETS.get(id(arg))
        if cached is None or cached[0] is not arg:
            if not all(type(a) is int for a in arg):
                return any(_eq(value, a) for a in arg)
            if len(_INT_SETS) > 64:
                _INT_SETS.clear()
            cached = (arg, frozenset(arg))  # the list is kept so its id cannot be reused
            _INT_SETS[id(arg)] = cached
        return value in cached[1]
    return any(_eq(value, a) for a in arg)


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | float):
        return (1, value)
    return (2, str(value))


def _mentions(where: list[Any], name: str) -> bool:
    for clause in where:
        if isinstance(clause, list) and clause:
            if clause[0] in ("AND", "OR", "NOT") and len(clause) > 1:
                if _mentions(clause[1], name):
                    return True
            elif str(clause[0]).split(":")[0] == name:
                return True
    return False


def _envelope(entity: str, action: str, values: list[Any], matched: int | None) -> dict[str, Any]:
    """APIv4's envelope; countMatched only when known (no limit, or row_count selected)."""
    envelope: dict[str, Any] = {
        "entity": entity,
        "action": action,
        "debug": None,
        "version": 4,
        "count": len(values),
        "countFetched": len(values),
        "values": values,
    }
    if matched is not None:
        envelope["countMatched"] = matched
    return envelope


def _id_bounds(where: list[Any]) -> tuple[int | None, int | None]:
    """The inclusive id range the top-level integer id clauses allow (None: unbounded)."""
    lo: int | None = None
    hi: int | None = None

    def at_least(n: int) -> None:
        nonlocal lo
        lo = n if lo is None else max(lo, n)

    def at_most(n: int) -> None:
        nonlocal hi
        hi = n if hi is None else min(hi, n)

    for clause in where:
        if not _is_id_bound(clause):
            continue
        op, arg = str(clause[1]).upper(), clause[2]
        if op == "BETWEEN":
            at_least(arg[0])
            at_most(arg[1])
        else:
            if op in (">", ">="):
                at_least(arg + (op == ">"))
            elif op in ("<", "<="):
                at_most(arg - (op == "<"))
            elif op == "=":
                at_least(arg)
                at_most(arg)
    return lo, hi


def _is_id_bound(clause: Any) -> bool:
    """A top-level integer condition on id that ``_id_bounds`` turns into a range."""
    if not (isinstance(clause, list) and len(clause) == 3 and clause[0] == "id"):
        return False
    op, arg = str(clause[1]).upper(), clause[2]
    if op == "BETWEEN":
        return isinstance(arg, list) and len(arg) == 2 and all(type(a) is int for a in arg)
    return type(arg) is int and op in (">", ">=", "<", "<=", "=")


def _php_array(answers: dict[str, Any]) -> Any:
    """What PHP's json_encode makes of an array: a list when its keys are 0..n-1 in order."""
    if list(answers) == [str(i) for i in range(len(answers))]:
        return list(answers.values())
    return answers


def _parse_calls(raw: str) -> dict[str, list[Any]] | None:
    """``calls`` as CiviCRM reads it: None when not JSON (PHP's foreach then runs nothing).

    Raises ValueError where PHP dies with a fatal error (a call that is not a list starting
    with entity and action, or params that are not an object).
    """
    try:
        decoded = json.loads(raw)
    except json.JSONDecodeError:
        return None
    if isinstance(decoded, list):
        decoded = {str(i): v for i, v in enumerate(decoded)}
    if not isinstance(decoded, dict):
        return None
    for call in decoded.values():
        if not isinstance(call, list) or len(call) < 2:
            raise ValueError("a call must be [entity, action, params]")
        if any(isinstance(part, dict | list) for part in call[:2]):
            raise ValueError("entity and action must be strings")
        if len(call) > 2 and not isinstance(call[2], dict) and call[2] != []:
            raise ValueError("params must be an object")
    return decoded


def _make_handler(sandbox: CiviCRMSandbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go in two writes; avoid 40 ms stalls

        def log_message(self, format: str, *args: Any) -> None:  # quiet: no request logs
            return

        def _send(self, status: int, body: str, content_type: str) -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            # Compact, as PHP json_encode writes it.
            self._send(status, json.dumps(payload, separators=(",", ":")), "application/json")

        def do_GET(self) -> None:
            self._serve(b"")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self._serve(self.rfile.read(length) if length else b"")

        def _serve(self, body: bytes) -> None:
            route = sandbox._route(self.path)
            if route is None:
                self._send(404, "<html><body><h1>Page not found</h1></body></html>", "text/html")
                return
            # authx runs before the page: bad credentials never reach the API.
            auth = self.headers.get("X-Civi-Auth") or ""
            scheme, _, token = auth.partition(" ")
            if not auth or scheme.lower() != "bearer" or not token.strip():
                self._send(401, "Must satisfy guard", "text/plain")
                return
            if token.strip() != sandbox.api_key:
                self._send(401, "Invalid credential", "text/plain")
                return
            if "authenticate with api key" not in sandbox.permissions:
                self._send(401, "Must satisfy guard", "text/plain")
                return
            if sandbox.site_key is not None and self.headers.get("X-Civi-Key") != sandbox.site_key:
                self._send(401, "Must satisfy guard", "text/plain")
                return
            entity, action = route
            with sandbox._lock:
                sandbox.http_requests.append(
                    (self.command, f"{entity}.{action}" if entity else "calls")
                )
            if sandbox.latency:
                time.sleep(sandbox.latency)
            fault = sandbox._pop_fault()
            if fault == 503:
                self._send(
                    503,
                    "<html><body><h1>Site under maintenance</h1>"
                    "<p>This site is being upgraded. Please try again shortly.</p></body></html>",
                    "text/html",
                )
                return
            if fault is not None:
                self._json(fault, {"error_code": 0, "error_message": "DB Error: deadlock found"})
                return
            if self.headers.get("X-Requested-With") != "XMLHttpRequest":
                self._json(
                    400,
                    {
                        "error_code": 400,
                        "error_message": "SECURITY ALERT: Ajax requests can only be issued by "
                        "javascript clients, eg. CRM.api4().",
                    },
                )
                return
            if self.command == "GET" and not action.lower().startswith("get"):
                # Checked before anything is read: a multi-call's action is '' here too.
                self._json(
                    405,
                    {
                        "error_code": 405,
                        "error_message": "SECURITY: All requests that modify the database must "
                        "be http POST, not GET.",
                    },
                )
                return
            if not entity:
                self._serve_calls(body)
                return
            params: dict[str, Any] = {}
            ctype = self.headers.get("Content-Type") or ""
            raw_params = None
            if self.command == "POST" and ctype.startswith("application/x-www-form-urlencoded"):
                raw_params = (parse_qs(body.decode("utf-8")).get("params") or [None])[0]
            elif self.command == "GET":
                raw_params = (parse_qs(urlsplit(self.path).query).get("params") or [None])[0]
            if raw_params is None:
                # A JSON body is not read by CiviCRM: the call runs with no params and the
                # connector gets nothing useful back. The sandbox makes that unmistakable.
                self._json(200, _envelope(entity, action, [], 0))
                return
            try:
                params = json.loads(raw_params)
                if not isinstance(params, dict):
                    raise ApiError(500, "params must be a JSON object")
                result = sandbox.handle(entity, action, params)
            except json.JSONDecodeError:
                self._json(500, {"error_code": 0, "error_message": "params is not valid JSON"})
                return
            except ApiError as exc:
                self._json(
                    exc.status,
                    {"error_code": 0, "error_message": exc.message, "status": exc.status},
                )
                return
            self._json(200, result)

        def _serve_calls(self, body: bytes) -> None:
            """The multi-call form: ``calls`` from the POST body only, never the query."""
            ctype = self.headers.get("Content-Type") or ""
            raw = None
            if ctype.startswith("application/x-www-form-urlencoded"):
                raw = (parse_qs(body.decode("utf-8")).get("calls") or [None])[0]
            try:
                if raw is None:
                    raise ValueError("Could not find valid value for calls")
                calls = _parse_calls(raw)
            except ValueError as exc:
                # Uncaught in CRM_Api4_Page_AJAX: CiviCRM's fatal-error page, not JSON.
                self._send(
                    500, f"<html><body><h1>Error</h1><p>{exc}</p></body></html>", "text/html"
                )
                return
            status, answer = sandbox.handle_calls(calls or {})
            self._send(status, json.dumps(answer, separators=(",", ":")), "application/json")

    return Handler


def generate(
    sandbox: CiviCRMSandbox,
    *,
    seed: int,
    contacts: int,
    activities_per_contact: int,
    cases_per_contact: float,
    contributions_per_contact: float,
) -> None:
    """Fill the sandbox with seeded synthetic people, cases, activities and contributions.

    Modified dates are spread over the year before the sandbox clock so incremental runs
    have something to order by; several records deliberately share a timestamp.
    """
    rng = random.Random(seed)
    data = sandbox.data
    base = sandbox._clock - timedelta(days=365)

    def stamp() -> str:
        # Whole minutes: collisions between records are common, as in real sites.
        return (base + timedelta(minutes=rng.randrange(0, 365 * 24 * 60, 7))).strftime(TS_FORMAT)

    for _ in range(contacts):
        ts = stamp()
        cid = data.insert(
            "Contact",
            {
                "contact_type": "Individual",
                "first_name": rng.choice(FIRST_NAMES),
                "last_name": rng.choice(LAST_NAMES),
                "birth_date": (
                    date(1950, 1, 1) + timedelta(days=rng.randrange(0, 20000))
                ).isoformat(),
                "is_deleted": False,
                "created_date": ts,
                "modified_date": ts,
                "Consent.share_data": rng.random() < 0.8,
            },
        )
        data.insert(
            "Email", {"contact_id": cid, "is_primary": True, "email": f"p{cid}@example.org"}
        )
        if rng.random() < 0.7:
            phone = f"07700 900{rng.randrange(0, 999):03d}"
            data.insert("Phone", {"contact_id": cid, "is_primary": True, "phone": phone})
        data.insert(
            "Address", {"contact_id": cid, "is_primary": True, "postal_code": rng.choice(POSTCODES)}
        )
        case_id = None
        if rng.random() < cases_per_contact:
            start = date(2024, 1, 1) + timedelta(days=rng.randrange(0, 400))
            closed = rng.random() < 0.4
            case_id = data.insert(
                "Case",
                {
                    "case_type_id": rng.choice((1, 2)),
                    "status_id": 2 if closed else 1,
                    "start_date": start.isoformat(),
                    "end_date": (start + timedelta(days=90)).isoformat() if closed else None,
                    "is_deleted": False,
                    "modified_date": stamp(),
                },
            )
            data.insert("CaseContact", {"case_id": case_id, "contact_id": cid})
        for _ in range(activities_per_contact):
            is_review = rng.random() < 0.3
            aid = data.insert(
                "Activity",
                {
                    "activity_type_id": 4 if is_review else rng.choice((1, 2, 3)),
                    "activity_date_time": stamp(),
                    "status_id": 2,
                    "duration": rng.choice((15, 30, 60)),
                    "case_id": case_id if rng.random() < 0.5 else None,
                    "is_deleted": False,
                    "modified_date": stamp(),
                    "Outcomes.outcome": rng.choice((1, 2, 3)) if is_review else None,
                    "Outcomes.status": rng.choice((1, 2, 3)) if is_review else None,
                    "Outcomes.value": float(rng.randrange(1, 6)) if is_review else None,
                },
            )
            data.insert(
                "ActivityContact", {"activity_id": aid, "contact_id": cid, "record_type_id": 3}
            )
        if rng.random() < contributions_per_contact:
            data.insert(
                "Contribution",
                {
                    "contact_id": cid,
                    "total_amount": float(rng.choice((5, 10, 25))),
                    "receive_date": stamp(),
                    "contribution_status_id": 1,
                    "modified_date": stamp(),
                },
            )


def main(argv: list[str] | None = None) -> None:
    """Serve a sandbox site until interrupted: ``python -m sandboxes.civicrm``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--contacts", type=int, default=20)
    parser.add_argument("--api-key", default="sandbox-api-key")
    parser.add_argument("--site-file", help="serve this site's records instead of generated ones")
    args = parser.parse_args(argv)
    with CiviCRMSandbox(
        api_key=args.api_key,
        seed=args.seed,
        contacts=args.contacts,
        site_file=args.site_file,
        port=args.port,
    ) as sandbox:
        print(f"CiviCRM sandbox at {sandbox.url} (API key {sandbox.api_key})", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
