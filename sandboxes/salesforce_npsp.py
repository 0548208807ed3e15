"""A local Salesforce org on loopback, for the connector's tests and the demo.

It follows the documented REST protocol closely enough that the connector cannot tell it
from a small real org: the OAuth token endpoint (client credentials and JWT bearer), the
versions list, describeGlobal and describe (field-level security = hidden fields are absent),
``query``/``queryAll`` with a SOQL subset and ``nextRecordsUrl`` paging, the getDeleted
resource, the ``Sforce-Limit-Info`` header, and error bodies as JSON arrays. Switches let a
test inject the faults the connector must survive (expired sessions, 5xx, 420/429 with
Retry-After, an exhausted daily allocation, schema drift, updates and deletes between runs).

It refuses and forgets what Salesforce does: getDeleted ignores seconds and refuses a window
under a minute or starting over 30 days back (400 INVALID_REPLICATION_DATE), its log forgets
entries after 15 days or when purged (``earliestDateAvailable`` says from when); a hard delete
leaves no trace; a field hidden by field-level security is absent from describe and a query
naming it is refused (INVALID_FIELD); a closed query cursor is INVALID_QUERY_LOCATOR.

Everything is in memory and synthetic: names come from short fixed lists, never real people.
"""

from __future__ import annotations

import base64
import csv
import functools
import hashlib
import hmac
import io
import json
import random
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt

API_VERSION = "62.0"
ORG_ID = "00D5g000004ZzqAEAS"
USER_ID = "0055g00000AbCdEAAV"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
STANDARD_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
PMM_PREFIX = "pmdm__"

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"

# Key prefixes: the standard ones are Salesforce's own; custom objects get a0X-style ones.
KEY_PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "Opportunity": "006",
    "pmdm__Program__c": "a0A",
    "pmdm__Service__c": "a0B",
    "pmdm__ProgramEngagement__c": "a0C",
    "pmdm__ServiceDelivery__c": "a0D",
    "npe03__Recurring_Donation__c": "a0E",
    "Outcome__c": "a0F",
}

_SYSTEM_FIELDS: list[tuple[str, str]] = [
    ("Id", "id"),
    ("IsDeleted", "boolean"),
    ("CreatedDate", "datetime"),
    ("LastModifiedDate", "datetime"),
    ("SystemModstamp", "datetime"),
]

# (field name, describe type[, referenceTo]) per object, after the system fields.
_OBJECT_FIELDS: dict[str, list[tuple[str, ...]]] = {
    "Account": [("Name", "string"), ("Type", "picklist"), ("BillingPostalCode", "string")],
    "Contact": [
        ("FirstName", "string"),
        ("LastName", "string"),
        ("Birthdate", "date"),
        ("Email", "email"),
        ("Phone", "phone"),
        ("MobilePhone", "phone"),
        ("MailingPostalCode", "string"),
        ("MailingCity", "string"),
        ("MailingAddress", "address"),
        ("AccountId", "reference", "Account"),
        ("Consent_To_Share__c", "boolean"),
    ],
    "Opportunity": [
        ("Name", "string"),
        ("AccountId", "reference", "Account"),
        ("npsp__Primary_Contact__c", "reference", "Contact"),
        ("Amount", "currency"),
        ("CloseDate", "date"),
        ("StageName", "picklist"),
    ],
    "npe03__Recurring_Donation__c": [
        ("Name", "string"),
        ("npe03__Contact__c", "reference", "Contact"),
        ("npe03__Amount__c", "currency"),
        ("npe03__Date_Established__c", "date"),
        ("npsp__Status__c", "picklist"),
    ],
    "pmdm__Program__c": [("Name", "string"), ("pmdm__Status__c", "picklist")],
    "pmdm__Service__c": [
        ("Name", "string"),
        ("pmdm__Program__c", "reference", "pmdm__Program__c"),
        ("pmdm__UnitOfMeasurement__c", "string"),
    ],
    "pmdm__ProgramEngagement__c": [
        ("Name", "string"),
        ("pmdm__Contact__c", "reference", "Contact"),
        ("pmdm__Program__c", "reference", "pmdm__Program__c"),
        ("pmdm__Stage__c", "picklist"),
        ("pmdm__StartDate__c", "date"),
        ("pmdm__EndDate__c", "date"),
    ],
    "pmdm__ServiceDelivery__c": [
        ("Name", "string"),
        ("pmdm__Contact__c", "reference", "Contact"),
        ("pmdm__Service__c", "reference", "pmdm__Service__c"),
        ("pmdm__ProgramEngagement__c", "reference", "pmdm__ProgramEngagement__c"),
        ("pmdm__DeliveryDate__c", "date"),
        ("pmdm__Quantity__c", "double"),
        ("pmdm__AttendanceStatus__c", "picklist"),
        ("pmdm__AttendanceRate__c", "percent"),
    ],
    "Outcome__c": [
        ("Name", "string"),
        ("Contact__c", "reference", "Contact"),
        ("Program__c", "reference", "pmdm__Program__c"),
        ("Outcome__c", "string"),
        ("Status__c", "picklist"),
        ("Measured_On__c", "date"),
        ("Value__c", "double"),
    ],
}

# Formula fields are computed, never updateable, and changing their inputs elsewhere does
# not bump the record's SystemModstamp: the reason the connector offers a full refresh.
_FORMULA_FIELDS = {("pmdm__ServiceDelivery__c", "pmdm__AttendanceRate__c")}

_GIVEN = ["Alex", "Sam", "Robin", "Jo", "Kit", "Ash", "Lee", "Max", "Nico", "Remy", "Ty", "Val"]
_FAMILY = ["Testfield", "Sampleton", "Mockridge", "Fakeley", "Demoson", "Placeholt", "Dummer"]
_PROGRAMS = ["Housing Support", "Employment Coaching", "Food Bank", "Digital Skills", "Wellbeing"]
_STAGES = ["Applied", "Active", "Completed", "Withdrawn"]
_ATTENDANCE = ["Present", "Absent", "Late"]
_OUTCOMES = ["Secured tenancy", "Started job", "Felt listened to", "Improved wellbeing"]
_OUTCOME_STATUS = ["Achieved", "In progress", "Not achieved"]


@dataclass
class SandboxSizes:
    """How much synthetic data the seeded generator makes (small by default: tests are fast)."""

    contacts: int = 40
    programs: int = 3
    services_per_program: int = 2
    engagements: int = 50
    deliveries: int = 120
    opportunities: int = 20
    recurring_donations: int = 5
    outcomes: int = 30


def make_id(prefix: str, number: int) -> str:
    """An 18-character Salesforce-style Id with the real case-safe checksum suffix."""
    digits = ""
    n = number
    while True:
        n, r = divmod(n, 62)
        digits = _B62[r] + digits
        if n == 0:
            break
    base = prefix + "5g" + digits.rjust(10, "0")
    suffix = ""
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(base[chunk * 5 : chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        suffix += _CHECKSUM[bits]
    return base + suffix


@functools.lru_cache(maxsize=65536)
def format_datetime(value: datetime) -> str:
    """Salesforce's JSON dateTime form: milliseconds and a +0000 offset.

    Cached, and isoformat rather than strftime: the sandbox renders three per record, which
    dominated its time serving the 200,000-record benchmark.
    """
    text = value.astimezone(UTC).isoformat(timespec="milliseconds")
    return text[:-6] + "+0000"


def _parse_datetime(text: str) -> datetime:
    text = text.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif re.search(r"[+-]\d{4}$", text):
        text = text[:-2] + ":" + text[-2:]
    return datetime.fromisoformat(text).astimezone(UTC)


def _blank_is_null(values: dict[str, Any]) -> dict[str, Any]:
    """Salesforce stores an empty text value as null."""
    return {k: (None if v == "" else v) for k, v in values.items()}


def _truncate_ms(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


class SoqlError(Exception):
    """A query the org rejects, with Salesforce's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Query:
    fields: list[str]
    sobject: str
    conditions: list[tuple[str, str, Any]]
    order_by: list[str]
    limit: int | None


_SOQL = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<obj>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?"
    r"(?:\s+ORDER\s+BY\s+(?P<order>.+?))?"
    r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_CONDITION = re.compile(r"^\s*(\w+)\s*(>=|<=|!=|=|<|>)\s*(.+?)\s*$", re.DOTALL)
_IN_CONDITION = re.compile(r"^\s*(\w+)\s+(IN|NOT\s+IN)\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL)
_DATETIME_LITERAL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$")
_DATE_LITERAL = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _parse_literal(text: str) -> Any:
    if text.startswith("'") and text.endswith("'") and len(text) >= 2:
        return text[1:-1].replace("\\'", "'")
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    if _DATETIME_LITERAL.match(text):
        return _parse_datetime(text)
    if _DATE_LITERAL.match(text):
        return text
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{text}'") from None


def parse_soql(text: str) -> _Query:
    """Parse the SOQL subset the connector uses; anything else is MALFORMED_QUERY."""
    match = _SOQL.match(text)
    if not match:
        raise SoqlError("MALFORMED_QUERY", f"unexpected token in query: {text[:80]!r}")
    fields = [f.strip() for f in match["fields"].split(",")]
    if any(not re.fullmatch(r"\w+", f) for f in fields):
        raise SoqlError("MALFORMED_QUERY", "only plain field names are supported")
    conditions: list[tuple[str, str, Any]] = []
    if match["where"]:
        for part in re.split(r"\s+AND\s+", match["where"], flags=re.IGNORECASE):
            listed = _IN_CONDITION.match(part)
            if listed:
                values = [v.strip() for v in listed[3].split(",")]
                if not values or any(not v for v in values):
                    raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{part.strip()}'")
                op = "IN" if listed[2].upper() == "IN" else "NOT IN"
                conditions.append((listed[1], op, [_parse_literal(v) for v in values]))
                continue
            cond = _CONDITION.match(part)
            if not cond:
                raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{part.strip()}'")
            conditions.append((cond[1], cond[2], _parse_literal(cond[3])))
    order = []
    if match["order"]:
        for part in match["order"].split(","):
            name = part.strip().split()[0]
            order.append(name)
    limit = int(match["limit"]) if match["limit"] else None
    return _Query(fields, match["obj"], conditions, order, limit)


def _compare(value: Any, op: str, literal: Any) -> bool:
    if op in ("IN", "NOT IN"):
        return (value in literal) == (op == "IN")
    if isinstance(literal, datetime) and isinstance(value, str):
        value = _parse_datetime(value)
    if value is None or literal is None:
        if op == "=":
            return value is literal
        if op == "!=":
            return value is not literal
        return False
    if op == "=":
        return bool(value == literal)
    if op == "!=":
        return bool(value != literal)
    if op == ">=":
        return bool(value >= literal)
    if op == "<=":
        return bool(value <= literal)
    if op == ">":
        return bool(value > literal)
    return bool(value < literal)


@dataclass
class _Fault:
    status: int
    remaining: int
    retry_after: float | None = None
    code: str = "SERVER_UNAVAILABLE"


@dataclass
class _Cursor:
    sobject: str
    rows: list[dict[str, Any]]
    fields: list[str]


@dataclass
class SandboxState:
    """All mutable org state, guarded by one lock (the server answers on many threads)."""

    schema: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    hidden_objects: set[str] = field(default_factory=set)
    # Fields field-level security hides from the integration user, by object: absent from
    # describe, and a SOQL naming one is refused with INVALID_FIELD.
    hidden_fields: dict[str, set[str]] = field(default_factory=dict)
    # Fields hidden the moment the next query on their object arrives (FLS revoked between
    # a load's describe and its query).
    hide_at_query: dict[str, set[str]] = field(default_factory=dict)
    # Per object: the delete log has forgotten every entry up to this time (the two-hourly
    # purge of a large log, or a hard delete); getDeleted's earliestDateAvailable.
    log_purged_until: dict[str, datetime] = field(default_factory=dict)
    record_count_fault: tuple[int, str] | None = None
    out_of_sight: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    query_faults: list[str] = field(default_factory=list)
    replication_refusals: int = 0
    # Fields a query names and describe lists, yet the results leave out.
    omitted_fields: dict[str, set[str]] = field(default_factory=dict)
    # (object, queries on it still to answer first, ids, changes, SystemModstamp).
    edits_at_query: list[tuple[str, int, list[str], dict[str, Any], datetime]] = field(
        default_factory=list
    )
    # (object, id, changes): the next query on the object lists the record twice.
    repeats_at_query: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    cursors: dict[str, _Cursor] = field(default_factory=dict)
    deleted_log: dict[str, list[tuple[str, datetime]]] = field(default_factory=dict)
    faults: list[_Fault] = field(default_factory=list)
    bulk_jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    bulk_failures: list[str] = field(default_factory=list)
    api_used: int = 0
    api_max: int = 15000
    counter: int = 0
    tokens_issued: int = 0
    requests: list[str] = field(default_factory=list)
    # The SOQL text of every query and queryAll, in order (tests check what was asked).
    queries: list[str] = field(default_factory=list)
    latency: float = 0.0


class SalesforceSandbox:
    """A loopback Salesforce org: ``with SalesforceSandbox(...) as sf: sf.url``.

    ``client_id``/``client_secret`` authorise the client-credentials flow; ``jwt_public_key``
    (PEM) verifies JWT bearer assertions for ``username``. ``page_size`` is the default query
    batch (Salesforce's is 2,000; a ``Sforce-Query-Options: batchSize=N`` header lowers it).
    """

    def __init__(
        self,
        *,
        seed: int = 7,
        sizes: SandboxSizes | None = None,
        client_id: str = "sandbox-consumer-key",
        client_secret: str = "sandbox-consumer-secret",
        username: str = "integration@example.org",
        jwt_public_key: str | bytes | None = None,
        page_size: int = 2000,
        max_url_length: int = 16384,
        api_max: int = 15000,
        with_pmm: bool = True,
        port: int = 0,
        org_file: str | Path | None = None,
        organization_id: str = "00D000000000001EAA",
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.username = username
        self.jwt_public_key = jwt_public_key
        self.page_size = page_size
        self.max_url_length = max_url_length
        self.port = port
        self._signing_key = secrets.token_bytes(32)
        self._lock = threading.RLock()
        self.state = SandboxState(api_max=api_max)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # The org's id, as Outbound Messages carry it (``OrganizationId``).
        self.organization_id = organization_id
        # Told of every record created, edited or deleted after the org is loaded, as an
        # Outbound Message workflow rule or a Change Data Capture channel would be:
        # ``notifier(sobject, action, ids)`` (sandboxes/webhooks.py has the senders).
        self.notifier: Callable[[str, str, list[str]], Any] | None = None
        self._build_schema()
        if org_file is not None:
            self.load_org(Path(org_file))
        else:
            self._generate(random.Random(seed), sizes or SandboxSizes())
        if not with_pmm:
            self.hide_pmm()

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> SalesforceSandbox:
        """Bind a free loopback port and serve in a daemon thread."""
        handler = type("_BoundHandler", (_Handler,), {"sandbox": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SalesforceSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Instance and login URL (one server plays both, like a My Domain URL)."""
        assert self._server is not None, "sandbox not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ---------------------------------------------------------------- data
    def _build_schema(self) -> None:
        for obj, fields in _OBJECT_FIELDS.items():
            described: dict[str, dict[str, Any]] = {}
            for spec in [*_SYSTEM_FIELDS, *fields]:
                name, kind = spec[0], spec[1]
                described[name] = _field_describe(
                    obj, name, kind, spec[2] if len(spec) > 2 else None
                )
            self.state.schema[obj] = described
            self.state.records[obj] = {}
            self.state.deleted_log[obj] = []

    def _new_id(self, obj: str) -> str:
        self.state.counter += 1
        return make_id(KEY_PREFIXES.get(obj, "a0Z"), self.state.counter)

    def load_org(self, path: Path) -> None:
        """Serve the records of an org file (``{"created": ..., "records": {sobject: [...]}}``,
        each record with its ``Id``) instead of generated ones: the demo's member."""
        body = json.loads(path.read_text(encoding="utf-8"))
        created = _parse_datetime(body["created"])
        for obj, rows in body["records"].items():
            if obj not in self.state.schema:
                raise ValueError(f"{path}: the sandbox has no object {obj}")
            for row in rows:
                values = {k: v for k, v in row.items() if k != "Id"}
                unknown = set(values) - set(self.state.schema[obj])
                if unknown:
                    raise ValueError(f"{path}: {obj} has no field(s) {sorted(unknown)}")
                self.insert(obj, values, created, record_id=row["Id"])

    def insert(
        self,
        obj: str,
        values: dict[str, Any],
        at: datetime | None = None,
        record_id: str | None = None,
    ) -> str:
        """Create one record; system fields are filled in like Salesforce does."""
        with self._lock:
            stamp = _truncate_ms(at or datetime.now(UTC))
            record_id = record_id or self._new_id(obj)
            record = {name: None for name in self.state.schema[obj]}
            record.update(_blank_is_null(values))
            record.update(
                Id=record_id,
                IsDeleted=False,
                CreatedDate=stamp,
                LastModifiedDate=stamp,
                SystemModstamp=stamp,
            )
            self.state.records[obj][record_id] = record
        self._notify(obj, "create", [record_id])
        return record_id

    def _generate(self, rng: random.Random, sizes: SandboxSizes) -> None:
        base = datetime(2025, 1, 1, tzinfo=UTC)

        def stamp() -> datetime:
            return base + timedelta(seconds=rng.randrange(0, 300 * 86400))

        def day(start_year: int = 2024) -> str:
            return (date(start_year, 1, 1) + timedelta(days=rng.randrange(0, 700))).isoformat()

        accounts, contacts, programs, services, engagements = [], [], [], [], []
        for i in range(sizes.contacts):
            family = rng.choice(_FAMILY)
            if i % 2 == 0 or not accounts:
                accounts.append(
                    self.insert(
                        "Account",
                        {"Name": f"{family} Household", "Type": "Household"},
                        stamp(),
                    )
                )
            postcode = f"ZZ{rng.randrange(1, 9)} {rng.randrange(1, 9)}AA"
            contacts.append(
                self.insert(
                    "Contact",
                    {
                        "FirstName": rng.choice(_GIVEN),
                        "LastName": family,
                        "Birthdate": (
                            date(1950, 1, 1) + timedelta(days=rng.randrange(0, 20000))
                        ).isoformat(),
                        "Email": f"person{i}@example.invalid",
                        "Phone": f"+44 7700 900{i % 1000:03d}",
                        "MobilePhone": None,
                        "MailingPostalCode": postcode,
                        "MailingCity": "Testville",
                        "AccountId": accounts[-1],
                        "Consent_To_Share__c": rng.random() < 0.8,
                    },
                    stamp(),
                )
            )
        for i in range(sizes.programs):
            programs.append(
                self.insert(
                    "pmdm__Program__c",
                    {"Name": _PROGRAMS[i % len(_PROGRAMS)], "pmdm__Status__c": "Active"},
                    stamp(),
                )
            )
            for j in range(sizes.services_per_program):
                services.append(
                    (
                        programs[-1],
                        self.insert(
                            "pmdm__Service__c",
                            {
                                "Name": f"{_PROGRAMS[i % len(_PROGRAMS)]} session {j + 1}",
                                "pmdm__Program__c": programs[-1],
                                "pmdm__UnitOfMeasurement__c": "Session",
                            },
                            stamp(),
                        ),
                    )
                )
        for i in range(sizes.engagements):
            if not contacts or not programs:
                break
            start = day()
            engagements.append(
                (
                    contacts[i % len(contacts)],
                    self.insert(
                        "pmdm__ProgramEngagement__c",
                        {
                            "Name": f"PE-{i:05d}",
                            "pmdm__Contact__c": contacts[i % len(contacts)],
                            "pmdm__Program__c": rng.choice(programs),
                            "pmdm__Stage__c": rng.choice(_STAGES),
                            "pmdm__StartDate__c": start,
                            "pmdm__EndDate__c": None if rng.random() < 0.5 else day(2025),
                        },
                        stamp(),
                    ),
                )
            )
        for i in range(sizes.deliveries):
            if not engagements or not services:
                break
            contact, engagement = rng.choice(engagements)
            self.insert(
                "pmdm__ServiceDelivery__c",
                {
                    "Name": f"SD-{i:06d}",
                    "pmdm__Contact__c": contact,
                    "pmdm__Service__c": rng.choice(services)[1],
                    "pmdm__ProgramEngagement__c": engagement,
                    "pmdm__DeliveryDate__c": day(2025),
                    "pmdm__Quantity__c": float(rng.randrange(1, 4)),
                    "pmdm__AttendanceStatus__c": rng.choice(_ATTENDANCE),
                    "pmdm__AttendanceRate__c": float(rng.randrange(0, 101)),
                },
                stamp(),
            )
        for i in range(sizes.opportunities):
            if not contacts:
                break
            self.insert(
                "Opportunity",
                {
                    "Name": f"Donation {i}",
                    "AccountId": rng.choice(accounts),
                    "npsp__Primary_Contact__c": rng.choice(contacts),
                    "Amount": float(rng.randrange(5, 500)),
                    "CloseDate": day(),
                    "StageName": "Closed Won",
                },
                stamp(),
            )
        for i in range(sizes.recurring_donations):
            if not contacts:
                break
            self.insert(
                "npe03__Recurring_Donation__c",
                {
                    "Name": f"Monthly gift {i}",
                    "npe03__Contact__c": rng.choice(contacts),
                    "npe03__Amount__c": 10.0,
                    "npe03__Date_Established__c": day(),
                    "npsp__Status__c": "Active",
                },
                stamp(),
            )
        for i in range(sizes.outcomes):
            if not contacts or not programs:
                break
            self.insert(
                "Outcome__c",
                {
                    "Name": f"OUT-{i:05d}",
                    "Contact__c": rng.choice(contacts),
                    "Program__c": rng.choice(programs),
                    "Outcome__c": rng.choice(_OUTCOMES),
                    "Status__c": rng.choice(_OUTCOME_STATUS),
                    "Measured_On__c": day(2025),
                    "Value__c": float(rng.randrange(0, 10)),
                },
                stamp(),
            )

    # ---------------------------------------------------------------- test switches
    def _notify(self, obj: str, action: str, ids: list[str]) -> None:
        if self.notifier is not None and ids:
            self.notifier(obj, action, ids)

    def ids(self, obj: str, include_deleted: bool = False) -> list[str]:
        """Record Ids of one object, ordered by Id."""
        with self._lock:
            return sorted(
                rid
                for rid, rec in self.state.records[obj].items()
                if include_deleted or not rec["IsDeleted"]
            )

    def record(self, obj: str, record_id: str) -> dict[str, Any]:
        with self._lock:
            return dict(self.state.records[obj][record_id])

    def update_records(
        self,
        obj: str,
        ids: list[str],
        changes: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> datetime:
        """Edit records; all of them get the same SystemModstamp (``at`` or now)."""
        with self._lock:
            stamp = _truncate_ms(at or datetime.now(UTC))
            for record_id in ids:
                record = self.state.records[obj][record_id]
                record.update(_blank_is_null(changes or {}))
                record["LastModifiedDate"] = record["SystemModstamp"] = stamp
        self._notify(obj, "update", list(ids))
        return stamp

    def delete_records(self, obj: str, ids: list[str], at: datetime | None = None) -> datetime:
        """Move records to the recycle bin: IsDeleted true, stamp bumped, delete log entry."""
        with self._lock:
            stamp = _truncate_ms(at or datetime.now(UTC))
            for record_id in ids:
                record = self.state.records[obj][record_id]
                record["IsDeleted"] = True
                record["SystemModstamp"] = stamp
                self.state.deleted_log[obj].append((record_id, stamp))
        self._notify(obj, "delete", list(ids))
        return stamp

    def purge_records(self, obj: str, ids: list[str]) -> None:
        """Empty them from the recycle bin: gone from queryAll, still in the delete log."""
        with self._lock:
            for record_id in ids:
                record = self.state.records[obj].pop(record_id)
                if not record["IsDeleted"]:
                    self.state.deleted_log[obj].append((record_id, _truncate_ms(datetime.now(UTC))))

    def purge_delete_log(self, obj: str, until: datetime | None = None) -> None:
        """Forget the delete log's entries up to ``until`` (now), as Salesforce's two-hourly
        purge of a large log does: getDeleted no longer lists them, and its
        ``earliestDateAvailable`` moves to ``until``."""
        with self._lock:
            until = _truncate_ms(until or datetime.now(UTC))
            self.state.deleted_log[obj] = [e for e in self.state.deleted_log[obj] if e[1] > until]
            self.state.log_purged_until[obj] = max(
                until, self.state.log_purged_until.get(obj, until)
            )

    def hard_delete_records(self, obj: str, ids: list[str]) -> None:
        """Delete for good, skipping the recycle bin (Bulk API hardDelete), with the delete
        log then purged: no query, queryAll or getDeleted ever shows these ids again."""
        self.delete_records(obj, ids)
        self.purge_records(obj, ids)
        self.purge_delete_log(obj)

    def lose_sight_of(self, obj: str, ids: list[str]) -> None:
        """Records the integration user can no longer see (a sharing rule or role change):
        gone from every query, with no delete-log entry, though nobody deleted them."""
        with self._lock:
            hidden = self.state.out_of_sight.setdefault(obj, {})
            for record_id in ids:
                hidden[record_id] = self.state.records[obj].pop(record_id)

    def regain_sight_of(self, obj: str) -> None:
        """The records ``lose_sight_of`` hid are visible again, unchanged."""
        with self._lock:
            self.state.records[obj].update(self.state.out_of_sight.pop(obj, {}))

    def edit_during_read(
        self, obj: str, ids: list[str], at: datetime, after_queries: int = 1
    ) -> None:
        """Someone edits ``ids`` (stamped ``at``) while a load reads ``obj``: just before the
        query after the next ``after_queries`` queries on it is answered."""
        with self._lock:
            self.state.edits_at_query.append((obj, after_queries, ids, {}, at))

    def repeat_during_read(self, obj: str, record_id: str, changes: dict[str, Any]) -> None:
        """The next query on ``obj`` lists ``record_id`` a second time, last, with
        ``changes`` and a newer SystemModstamp still inside the query's window: what a
        source whose cursor is not a snapshot shows of a record edited while it is read
        (Salesforce's query cursors are snapshots; a client must not rely on it)."""
        with self._lock:
            self.state.repeats_at_query.append((obj, record_id, changes))

    def refuse_next_replication(self, count: int = 1) -> None:
        """The next ``count`` getDeleted requests are refused with INVALID_REPLICATION_DATE
        whatever their window (an org whose clock disagrees with ours, say)."""
        with self._lock:
            self.state.replication_refusals += count

    def fail_record_count(self, status: int = 404, code: str = "NOT_FOUND") -> None:
        """Every later ``/limits/recordCount`` request is refused with ``status``/``code``."""
        with self._lock:
            self.state.record_count_fault = (status, code)

    def fail_next_query_page(self, code: str = "INVALID_QUERY_LOCATOR") -> None:
        """The next query page (``nextRecordsUrl``) is refused: INVALID_QUERY_LOCATOR (the
        cursor was closed: too many open, or idle too long) or QUERY_TIMEOUT."""
        with self._lock:
            self.state.query_faults.append(code)

    def set_formula_values(self, obj: str, field_name: str, value: Any) -> None:
        """Change a formula's result everywhere without touching SystemModstamp."""
        with self._lock:
            for record in self.state.records[obj].values():
                record[field_name] = value

    def add_field(self, obj: str, name: str, kind: str = "string", default: Any = None) -> None:
        with self._lock:
            self.state.schema[obj][name] = _field_describe(obj, name, kind, None)
            for record in self.state.records[obj].values():
                record.setdefault(name, default)

    def remove_field(self, obj: str, name: str) -> None:
        """Delete a field from the object (its values go with it)."""
        with self._lock:
            self.state.schema[obj].pop(name, None)

    def hide_field(self, obj: str, name: str, at_next_query: bool = False) -> None:
        """Revoke the integration user's field-level security on a field: describe leaves it
        out and a query naming it is refused (INVALID_FIELD); its values stay in the org.
        ``at_next_query``: only once the next query on ``obj`` arrives (after a describe)."""
        with self._lock:
            target = self.state.hide_at_query if at_next_query else self.state.hidden_fields
            target.setdefault(obj, set()).add(name)

    def omit_from_results(self, obj: str, name: str, omit: bool = True) -> None:
        """Query results leave the field out (describe still lists it, the query is taken):
        what a connector must not read as the field being empty."""
        with self._lock:
            target = self.state.omitted_fields.setdefault(obj, set())
            (target.add if omit else target.discard)(name)

    def show_field(self, obj: str, name: str) -> None:
        """Grant field-level security on a hidden field again."""
        with self._lock:
            self.state.hidden_fields.get(obj, set()).discard(name)
            self.state.hide_at_query.get(obj, set()).discard(name)

    def _visible_schema(self, obj: str) -> dict[str, dict[str, Any]]:
        hidden = self.state.hidden_fields.get(obj, set())
        return {k: v for k, v in self.state.schema[obj].items() if k not in hidden}

    def retype_field(self, obj: str, name: str, kind: str) -> None:
        with self._lock:
            self.state.schema[obj][name] = _field_describe(obj, name, kind, None)

    def hide_pmm(self) -> None:
        """Make this an org without the Program Management Module installed."""
        with self._lock:
            self.state.hidden_objects.update(
                o for o in self.state.schema if o.startswith(PMM_PREFIX)
            )

    def expire_tokens(self) -> None:
        with self._lock:
            self.state.tokens.clear()

    def fail_next(self, count: int, status: int = 503) -> None:
        """The next ``count`` API requests answer ``status`` (500/502/503...)."""
        with self._lock:
            code = "SERVER_UNAVAILABLE" if status == 503 else "UNKNOWN_EXCEPTION"
            self.state.faults.append(_Fault(status, count, None, code))

    def slow_down(self, seconds: float) -> None:
        """Every later API answer comes ``seconds`` late (each one still in time on its own),
        so a test can show that only a load's overall deadline stops a long load."""
        with self._lock:
            self.state.latency = seconds

    def clear_faults(self) -> None:
        with self._lock:
            self.state.faults.clear()

    def throttle_next(self, count: int, status: int = 429, retry_after: float = 0.05) -> None:
        """The next ``count`` API requests are throttled (429, or 420 like older proxies)."""
        with self._lock:
            self.state.faults.append(_Fault(status, count, retry_after, "REQUEST_LIMIT_EXCEEDED"))

    def set_api_usage(self, used: int, maximum: int | None = None) -> None:
        with self._lock:
            self.state.api_used = used
            if maximum is not None:
                self.state.api_max = maximum

    @property
    def api_usage(self) -> tuple[int, int]:
        with self._lock:
            return self.state.api_used, self.state.api_max

    @property
    def tokens_issued(self) -> int:
        with self._lock:
            return self.state.tokens_issued

    @property
    def queries(self) -> list[str]:
        """The SOQL of every query so far, in order (``WHERE Id IN (...)`` shows the ids)."""
        with self._lock:
            return list(self.state.queries)

    @property
    def requests(self) -> list[str]:
        """``METHOD path`` of every API request so far (tests count calls with it)."""
        with self._lock:
            return list(self.state.requests)

    # ---------------------------------------------------------------- protocol
    def issue_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type", "")
        if grant == "client_credentials":
            if form.get("client_id") != self.client_id or not hmac.compare_digest(
                form.get("client_secret", ""), self.client_secret
            ):
                return 400, {
                    "error": "invalid_client",
                    "error_description": "invalid client credentials",
                }
        elif grant == JWT_BEARER:
            problem = self._check_assertion(form.get("assertion", ""))
            if problem:
                return 400, {"error": "invalid_grant", "error_description": problem}
        else:
            return 400, {
                "error": "unsupported_grant_type",
                "error_description": "grant type not supported",
            }
        token = f"{ORG_ID}!{secrets.token_urlsafe(24)}"
        issued = str(int(time.time() * 1000))
        identity = f"{self.url}/id/{ORG_ID}/{USER_ID}"
        signature = base64.b64encode(
            hmac.new(self._signing_key, (identity + issued).encode(), hashlib.sha256).digest()
        ).decode()
        with self._lock:
            self.state.tokens.add(token)
            self.state.tokens_issued += 1
        return 200, {
            "access_token": token,
            "instance_url": self.url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued,
            "signature": signature,
        }

    def _check_assertion(self, assertion: str) -> str | None:
        if self.jwt_public_key is None:
            return "JWT bearer flow is not configured for this connected app"
        try:
            claims = jwt.decode(
                assertion,
                self.jwt_public_key,
                algorithms=["RS256"],
                audience=[self.url, *STANDARD_AUDIENCES],
                options={"require": ["iss", "sub", "aud", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            return "expired authorization code"
        except jwt.InvalidAudienceError:
            return "audience is invalid"
        except jwt.PyJWTError:
            return "invalid assertion"
        if claims["iss"] != self.client_id:
            return "invalid client credentials"
        if claims["sub"] != self.username:
            return "user hasn't approved this consumer"
        return None

    def next_fault(self) -> _Fault | None:
        with self._lock:
            while self.state.faults:
                fault = self.state.faults[0]
                if fault.remaining <= 0:
                    self.state.faults.pop(0)
                    continue
                fault.remaining -= 1
                return fault
            return None

    def visible_objects(self) -> list[str]:
        with self._lock:
            return [o for o in self.state.schema if o not in self.state.hidden_objects]

    def describe(self, obj: str) -> dict[str, Any] | None:
        with self._lock:
            if obj not in self.visible_objects():
                return None
            return {
                "name": obj,
                "label": obj.replace("__c", "").replace("pmdm__", "").replace("_", " "),
                "keyPrefix": KEY_PREFIXES.get(obj),
                "custom": obj.endswith("__c"),
                "queryable": True,
                "retrieveable": True,
                "replicateable": True,
                "fields": [
                    self._describe_field(obj, f) for f in self._visible_schema(obj).values()
                ],
                "urls": {"sobject": f"/services/data/v{API_VERSION}/sobjects/{obj}"},
            }

    def _describe_field(self, obj: str, described: dict[str, Any]) -> dict[str, Any]:
        """A field's describe; picklists list their values (here: the values in use)."""
        out = dict(described)
        if described["type"] in ("picklist", "multipicklist"):
            values = {
                rec[described["name"]]
                for rec in self.state.records[obj].values()
                if rec.get(described["name"]) is not None
            }
            out["picklistValues"] = [
                {"value": v, "label": v, "active": True, "defaultValue": False}
                for v in sorted(values)
            ]
        return out

    def run_query(self, soql: str, include_deleted: bool, version: str) -> dict[str, Any]:
        with self._lock:
            self.state.queries.append(soql)
            query = parse_soql(soql)
            obj = query.sobject
            if obj not in self.visible_objects():
                raise SoqlError(
                    "INVALID_TYPE",
                    f"\n{soql[:60]}\n^\nERROR at Row:1:Column:1\nsObject type '{obj}' is not "
                    "supported. If you are attempting to use a custom object, be sure to "
                    "append the '__c' after the entity name.",
                )
            pending = []
            for edit in self.state.edits_at_query:
                if edit[0] != obj:
                    pending.append(edit)
                elif edit[1] > 0:
                    pending.append((edit[0], edit[1] - 1, *edit[2:]))
                else:
                    self.update_records(obj, edit[2], edit[3], at=edit[4])
            self.state.edits_at_query = pending
            late = self.state.hide_at_query.pop(obj, set())
            self.state.hidden_fields.setdefault(obj, set()).update(late)
            schema = self._visible_schema(obj)
            used = query.fields + [c[0] for c in query.conditions] + query.order_by
            for name in used:
                if name not in schema:
                    raise SoqlError(
                        "INVALID_FIELD",
                        f"\n{soql[:60]}\n^\nERROR at Row:1:Column:1\nNo such column '{name}' on "
                        f"entity '{obj}'. If you are attempting to use a custom field, be sure "
                        "to append the '__c' after the custom field name. Please reference "
                        "your WSDL or the describe call for the appropriate names.",
                    )
            rows = [
                r
                for r in self.state.records[obj].values()
                if (include_deleted or not r["IsDeleted"])
                and all(_compare(r.get(f), op, v) for f, op, v in query.conditions)
            ]
            if query.order_by:
                rows.sort(key=lambda r: tuple(_sort_key(r.get(f)) for f in query.order_by))
            if query.limit is not None:
                rows = rows[: query.limit]
            snapshot = [self._render(obj, r, query.fields, version) for r in rows]
            repeats = [e for e in self.state.repeats_at_query if e[0] == obj]
            self.state.repeats_at_query = [e for e in self.state.repeats_at_query if e[0] != obj]
            for _, record_id, changes in repeats:
                again = next((dict(r) for r in rows if r["Id"] == record_id), None)
                if again is not None and rows:
                    again.update(changes)
                    newest = max(r["SystemModstamp"] for r in rows)
                    again["SystemModstamp"] = newest + timedelta(milliseconds=1)
                    snapshot.append(self._render(obj, again, query.fields, version))
            locator = "01g" + secrets.token_hex(8)[:15]
            self.state.cursors[locator] = _Cursor(obj, snapshot, query.fields)
            return {"locator": locator, "total": len(snapshot)}

    def _render(
        self, obj: str, record: dict[str, Any], fields: list[str], version: str
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attributes": {
                "type": obj,
                "url": f"/services/data/v{version}/sobjects/{obj}/{record['Id']}",
            }
        }
        schema = self.state.schema[obj]
        omitted = self.state.omitted_fields.get(obj, set())
        for name in fields:
            if name in omitted:
                continue
            value = record.get(name)
            kind = schema[name]["type"]
            if isinstance(value, datetime):
                value = format_datetime(value)
            elif kind == "address":
                value = {
                    "postalCode": record.get("MailingPostalCode"),
                    "city": record.get("MailingCity"),
                }
            elif (
                value is not None and kind in ("string", "textarea") and not isinstance(value, str)
            ):
                value = str(value)
            out[name] = value
        return out

    def page(self, locator: str, offset: int, size: int, version: str) -> dict[str, Any] | None:
        with self._lock:
            cursor = self.state.cursors.get(locator)
            if cursor is None:
                return None
            rows = cursor.rows[offset : offset + size]
            done = offset + size >= len(cursor.rows)
            body: dict[str, Any] = {"totalSize": len(cursor.rows), "done": done, "records": rows}
            if done:
                self.state.cursors.pop(locator, None)
            else:
                body["nextRecordsUrl"] = (
                    f"/services/data/v{version}/query/{locator}-{offset + size}"
                )
            return body

    def deleted(self, obj: str, start: datetime, end: datetime) -> tuple[int, Any]:
        """getDeleted as Salesforce answers it: seconds are ignored, a window shorter than a
        minute or starting more than 30 days ago is refused (400 INVALID_REPLICATION_DATE),
        and the delete log forgets entries after 15 days or when purged
        (``purge_delete_log``), which ``earliestDateAvailable`` then says."""
        now = datetime.now(UTC)
        start, end = start.replace(second=0, microsecond=0), end.replace(second=0, microsecond=0)
        with self._lock:
            refused = self.state.replication_refusals > 0
            self.state.replication_refusals -= int(refused)
        if refused or end - start < timedelta(minutes=1):
            return 400, [
                {
                    "errorCode": "INVALID_REPLICATION_DATE",
                    "message": "startDate must chronologically precede endDate by more than "
                    "one minute",
                }
            ]
        if start < now - timedelta(days=30):
            return 400, [
                {
                    "errorCode": "INVALID_REPLICATION_DATE",
                    "message": "startDate cannot be more than 30 days ago",
                }
            ]
        with self._lock:
            kept_from = now - timedelta(days=15)
            earliest = max(kept_from, self.state.log_purged_until.get(obj, kept_from))
            entries = [
                {"id": rid, "deletedDate": format_datetime(when)}
                for rid, when in self.state.deleted_log[obj]
                if start <= when < end and when > earliest
            ]
            return 200, {
                "deletedRecords": entries,
                "earliestDateAvailable": format_datetime(earliest),
                "latestDateCovered": format_datetime(min(end, now)),
            }

    # ---------------------------------------------------------------- Bulk API 2.0
    def record_counts(self, sobjects: list[str]) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "name": o,
                    "count": sum(1 for r in self.state.records[o].values() if not r["IsDeleted"]),
                }
                for o in sobjects
                if o in self.visible_objects()
            ]

    def fail_next_bulk_job(self, message: str = "Simulated job failure") -> None:
        """The next Bulk query job ends in state Failed with ``message``."""
        with self._lock:
            self.state.bulk_failures.append(message)

    @property
    def bulk_jobs(self) -> dict[str, dict[str, Any]]:
        """Jobs still stored (deleted ones disappear), by id, for tests to inspect."""
        with self._lock:
            return {k: dict(v["info"]) for k, v in self.state.bulk_jobs.items()}

    def create_bulk_job(self, request: dict[str, Any], version: str) -> tuple[int, Any]:
        operation = request.get("operation")
        if operation not in ("query", "queryAll"):
            return 400, [{"errorCode": "INVALIDJOB", "message": f"Invalid operation: {operation}"}]
        soql = str(request.get("query", ""))
        with self._lock:
            try:
                query = parse_soql(soql)
                if query.sobject in self.visible_objects():
                    schema = self._visible_schema(query.sobject)
                    for name in query.fields:
                        if schema.get(name, {}).get("type") in ("address", "location"):
                            return 400, [
                                {
                                    "errorCode": "INVALIDJOB",
                                    "message": (
                                        "Selecting compound data not supported in Bulk Query"
                                    ),
                                }
                            ]
                result = self.run_query(soql, operation == "queryAll", version)
            except SoqlError as err:
                return 400, [{"errorCode": err.code, "message": err.message}]
            cursor = self.state.cursors.pop(result["locator"])
            self.state.counter += 1
            job_id = make_id("750", self.state.counter)
            failure = self.state.bulk_failures.pop(0) if self.state.bulk_failures else None
            info = {
                "id": job_id,
                "operation": operation,
                "object": query.sobject,
                "createdById": USER_ID,
                "createdDate": format_datetime(datetime.now(UTC)),
                "state": "UploadComplete",
                "concurrencyMode": "Parallel",
                "contentType": "CSV",
                "apiVersion": float(version),
                "lineEnding": "LF",
                "columnDelimiter": "COMMA",
            }
            self.state.bulk_jobs[job_id] = {
                "info": info,
                "rows": cursor.rows,
                "fields": cursor.fields,
                "polls": 0,
                "failure": failure,
            }
            return 200, dict(info)

    def bulk_job_info(self, job_id: str, poll: bool = False) -> tuple[int, Any]:
        """Job status; each poll moves a job one step: UploadComplete → InProgress → done."""
        with self._lock:
            job = self.state.bulk_jobs.get(job_id)
            if job is None:
                return 404, [{"errorCode": "NOT_FOUND", "message": f"job {job_id} not found"}]
            info = job["info"]
            if poll and info["state"] in ("UploadComplete", "InProgress"):
                job["polls"] += 1
                if job["polls"] == 1:
                    info["state"] = "InProgress"
                elif job["failure"]:
                    info["state"] = "Failed"
                    info["errorMessage"] = job["failure"]
                else:
                    info["state"] = "JobComplete"
                    info["numberRecordsProcessed"] = len(job["rows"])
            return 200, dict(info)

    def bulk_results(
        self, job_id: str, locator: str | None, max_records: int | None
    ) -> tuple[str, str, int] | tuple[int, Any]:
        with self._lock:
            job = self.state.bulk_jobs.get(job_id)
            if job is None:
                return 404, [{"errorCode": "NOT_FOUND", "message": f"job {job_id} not found"}]
            if job["info"]["state"] != "JobComplete":
                return 412, [
                    {
                        "errorCode": "JOB_NOT_COMPLETE",
                        "message": "can only download query results of successfully completed "
                        f"bulk job. Current status: {job['info']['state']}",
                    }
                ]
            try:
                offset = int(base64.urlsafe_b64decode(locator).decode()) if locator else 0
            except (ValueError, UnicodeDecodeError):
                return 400, [{"errorCode": "INVALID_LOCATOR", "message": "invalid locator"}]
            size = max_records or 50000
            rows = job["rows"][offset : offset + size]
            buffer = io.StringIO()
            writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
            writer.writerow(job["fields"])
            for row in rows:
                writer.writerow([_csv_value(row.get(f)) for f in job["fields"]])
            end = offset + size >= len(job["rows"])
            next_locator = (
                "null" if end else base64.urlsafe_b64encode(str(offset + size).encode()).decode()
            )
            return buffer.getvalue(), next_locator, len(rows)

    def abort_bulk_job(self, job_id: str, state: str | None) -> tuple[int, Any]:
        with self._lock:
            job = self.state.bulk_jobs.get(job_id)
            if job is None:
                return 404, [{"errorCode": "NOT_FOUND", "message": f"job {job_id} not found"}]
            if state != "Aborted":
                return 400, [{"errorCode": "INVALIDJOBSTATE", "message": "only Aborted is allowed"}]
            if job["info"]["state"] in ("UploadComplete", "InProgress"):
                job["info"]["state"] = "Aborted"
            return 200, dict(job["info"])

    def delete_bulk_job(self, job_id: str) -> bool:
        with self._lock:
            return self.state.bulk_jobs.pop(job_id, None) is not None


_RENDERED_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+0000$")


def _csv_value(value: Any) -> str:
    """Bulk CSV text: nulls empty, booleans lower-case, dateTimes with a Z."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        value = format_datetime(value)
    if isinstance(value, str) and _RENDERED_DATETIME.match(value):
        return value[:-5] + "Z"
    if isinstance(value, dict):  # compound fields never reach Bulk; keep it total anyway
        return json.dumps(value)
    return str(value)


def _sort_key(value: Any) -> tuple[int, Any]:
    # Salesforce sorts nulls first by default.
    if value is None:
        return (0, "")
    if isinstance(value, bool):
        return (1, int(value))
    return (1, value)


def _field_describe(obj: str, name: str, kind: str, reference: str | None) -> dict[str, Any]:
    system = name in {"Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp"}
    formula = (obj, name) in _FORMULA_FIELDS
    compound = kind in ("address", "location")
    return {
        "name": name,
        "label": name.replace("__c", "").replace("_", " "),
        "type": kind,
        "length": 255 if kind in ("string", "picklist", "email", "phone") else 0,
        "custom": name.endswith("__c"),
        "calculated": formula,
        "nillable": not system,
        "createable": not (system or formula or compound),
        "updateable": not (system or formula or compound),
        "filterable": not compound,
        "sortable": not compound,
        "referenceTo": [reference] if reference else [],
        "compoundFieldName": "MailingAddress"
        if name in ("MailingPostalCode", "MailingCity")
        else None,
    }


class _Handler(BaseHTTPRequestHandler):
    """Routes one HTTP request to the sandbox; JSON in and out, errors as JSON arrays."""

    sandbox: SalesforceSandbox
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle plus delayed ACKs
    # add ~40 ms to every keep-alive request on loopback.
    disable_nagle_algorithm = True
    server_version = "SalesforceSandbox/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # silence per-request logs
        return

    # -- plumbing
    def _send(
        self, status: int, body: Any, headers: dict[str, str] | None = None, limit: bool = True
    ) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        if limit:
            used, maximum = self.sandbox.api_usage
            self.send_header("Sforce-Limit-Info", f"api-usage={used}/{maximum}")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, code: str, message: str, **headers: str) -> None:
        self._send(status, [{"message": message, "errorCode": code}], headers)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_POST(self) -> None:
        self.body = self._read_body()
        path = urlsplit(self.path).path
        if path == "/services/oauth2/token":
            form = {k: v[0] for k, v in parse_qs(self.body.decode()).items()}
            status, payload = self.sandbox.issue_token(form)
            self._send(status, payload, limit=False)
            return
        self._api("POST")

    def do_PATCH(self) -> None:
        self.body = self._read_body()
        self._api("PATCH")

    def do_GET(self) -> None:
        self.body = b""
        self._api("GET")

    def do_DELETE(self) -> None:
        self.body = b""
        self._api("DELETE")

    # -- the REST API
    def _api(self, method: str) -> None:
        sandbox = self.sandbox
        if len(self.path) > sandbox.max_url_length:
            self._send(414, [{"message": "URI Too Long", "errorCode": "URI_TOO_LONG"}], limit=False)
            return
        with sandbox._lock:
            sandbox.state.requests.append(f"{method} {urlsplit(self.path).path}")
            latency = sandbox.state.latency
        if latency:
            time.sleep(latency)
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        with sandbox._lock:
            valid = token in sandbox.state.tokens
        if not valid:
            self._error(401, "INVALID_SESSION_ID", "Session expired or invalid")
            return
        fault = sandbox.next_fault()
        if fault is not None:
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            self._error(fault.status, fault.code, f"Simulated fault {fault.status}", **headers)
            return
        with sandbox._lock:
            if sandbox.state.api_used >= sandbox.state.api_max:
                exhausted = True
            else:
                exhausted = False
                sandbox.state.api_used += 1
        if exhausted:
            self._error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            return
        try:
            self._route(method)
        except SoqlError as err:
            self._error(400, err.code, err.message)

    def _route(self, method: str) -> None:
        sandbox = self.sandbox
        parts = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path.rstrip("/")
        if path == "/services/data":
            self._send(
                200,
                [
                    {"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"},
                    {"label": "Spring '25", "url": "/services/data/v63.0", "version": "63.0"},
                ],
            )
            return
        match = re.fullmatch(r"/services/data/v(\d+\.\d)(/.*)?", path)
        if not match:
            self._error(404, "NOT_FOUND", "The requested resource does not exist")
            return
        version, rest = match[1], match[2] or ""
        if rest.startswith("/jobs/query"):
            self._bulk(method, rest, params, version)
            return
        if self._write(method, rest):
            return
        if method != "GET":
            self._error(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed")
            return
        if rest == "/limits/recordCount":
            with sandbox._lock:
                fault = sandbox.state.record_count_fault
            if fault is not None:
                self._error(fault[0], fault[1], "The requested resource does not exist")
                return
            wanted = [o for o in params.get("sObjects", "").split(",") if o]
            self._send(200, {"sObjects": sandbox.record_counts(wanted)})
            return
        if rest == "/sobjects":
            self._send(
                200,
                {
                    "encoding": "UTF-8",
                    "maxBatchSize": 200,
                    "sobjects": [
                        {
                            "name": o,
                            "label": o,
                            "keyPrefix": KEY_PREFIXES.get(o),
                            "custom": o.endswith("__c"),
                            "queryable": True,
                            "replicateable": True,
                        }
                        for o in sandbox.visible_objects()
                    ],
                },
            )
            return
        if rest == "/limits":
            used, maximum = sandbox.api_usage
            self._send(200, {"DailyApiRequests": {"Max": maximum, "Remaining": maximum - used}})
            return
        described = re.fullmatch(r"/sobjects/(\w+)/describe", rest)
        if described:
            body = sandbox.describe(described[1])
            if body is None:
                self._error(
                    404, "NOT_FOUND", f"The requested resource does not exist: {described[1]}"
                )
            else:
                self._send(200, body)
            return
        deleted = re.fullmatch(r"/sobjects/(\w+)/deleted", rest)
        if deleted:
            obj = deleted[1]
            if obj not in sandbox.visible_objects():
                self._error(404, "NOT_FOUND", f"The requested resource does not exist: {obj}")
                return
            try:
                start = _parse_datetime(params["start"])
                end = _parse_datetime(params["end"])
            except (KeyError, ValueError):
                self._error(400, "INVALID_REPLICATION_DATE", "start and end are required")
                return
            status, body = sandbox.deleted(obj, start, end)
            self._send(status, body)
            return
        size = sandbox.page_size
        options = self.headers.get("Sforce-Query-Options", "")
        batch = re.search(r"batchSize=(\d+)", options)
        if batch:
            # Salesforce clamps batchSize to 200..2,000; the sandbox's own size is the cap.
            size = min(size, max(200, min(int(batch[1]), 2000)))
        if rest in ("/query", "/queryAll"):
            if "q" not in params:
                self._error(400, "MALFORMED_QUERY", "q parameter is required")
                return
            result = sandbox.run_query(params["q"], rest == "/queryAll", version)
            self._send(200, sandbox.page(result["locator"], 0, size, version))
            return
        paged = re.fullmatch(r"/query(?:All)?/(\w+)-(\d+)", rest)
        if paged:
            with sandbox._lock:
                fault = sandbox.state.query_faults.pop(0) if sandbox.state.query_faults else None
            if fault == "INVALID_QUERY_LOCATOR":
                with sandbox._lock:  # Salesforce closed the cursor: it is gone for good
                    sandbox.state.cursors.pop(paged[1], None)
            elif fault is not None:
                self._error(400, fault, "Your query request was running for too long.")
                return
            body = sandbox.page(paged[1], int(paged[2]), size, version)
            if body is None:
                self._error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            else:
                self._send(200, body)
            return
        self._error(404, "NOT_FOUND", "The requested resource does not exist")

    def _write(self, method: str, rest: str) -> bool:
        """The REST record resources a user's edit goes through: POST /sobjects/{obj}
        (create: 201 ``{id, success, errors}``), PATCH and DELETE /sobjects/{obj}/{id} (204).
        True when the request was one of these (and answered)."""
        sandbox = self.sandbox
        created = re.fullmatch(r"/sobjects/(\w+)", rest)
        record = re.fullmatch(r"/sobjects/(\w+)/(\w{15,18})", rest)
        if not ((created and method == "POST") or (record and method in ("PATCH", "DELETE"))):
            return False
        match = created or record
        assert match is not None
        obj = match[1]
        if obj not in sandbox.visible_objects():
            self._error(404, "NOT_FOUND", f"The requested resource does not exist: {obj}")
            return True
        values: dict[str, Any] = {}
        if method != "DELETE":
            try:
                values = json.loads(self.body or b"{}")
            except ValueError:
                self._error(400, "JSON_PARSER_ERROR", "the request body is not JSON")
                return True
            if not isinstance(values, dict):
                self._error(400, "JSON_PARSER_ERROR", "the request body must be an object")
                return True
            schema = sandbox.state.schema[obj]
            for name in values:
                if name not in schema or not schema[name].get("updateable", False):
                    self._error(
                        400, "INVALID_FIELD_FOR_INSERT_UPDATE", f"Unable to create/update {name}"
                    )
                    return True
        if created:
            new_id = sandbox.insert(obj, values)
            self._send(201, {"id": new_id, "success": True, "errors": []})
            return True
        assert record is not None
        record_id = record[2]
        with sandbox._lock:
            live = sandbox.state.records[obj].get(record_id)
            exists = live is not None and not live["IsDeleted"]
        if not exists:
            self._error(404, "NOT_FOUND", "The requested resource does not exist")
            return True
        if method == "PATCH":
            sandbox.update_records(obj, [record_id], values)
        else:
            sandbox.delete_records(obj, [record_id])
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()
        return True

    def _bulk(self, method: str, rest: str, params: dict[str, str], version: str) -> None:
        """Bulk API 2.0 query jobs: create, status, CSV results paged by Sforce-Locator,
        abort (PATCH state Aborted) and delete."""
        sandbox = self.sandbox
        if rest == "/jobs/query" and method == "POST":
            try:
                request = json.loads(self.body or b"{}")
            except ValueError:
                self._error(400, "INVALIDJOB", "request body is not JSON")
                return
            status, body = sandbox.create_bulk_job(request, version)
            self._send(status, body)
            return
        match = re.fullmatch(r"/jobs/query/(\w+)(/results)?", rest)
        if not match:
            self._error(404, "NOT_FOUND", "The requested resource does not exist")
            return
        job_id, results = match[1], bool(match[2])
        if results and method == "GET":
            answer = sandbox.bulk_results(
                job_id, params.get("locator"), int(params.get("maxRecords") or 0) or None
            )
            if isinstance(answer, tuple) and len(answer) == 2:
                status, error = answer
                self._send(status, error)
                return
            payload, locator, count = answer
            data = payload.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(len(data)))
            used, maximum = sandbox.api_usage
            self.send_header("Sforce-Limit-Info", f"api-usage={used}/{maximum}")
            self.send_header("Sforce-Locator", locator)
            self.send_header("Sforce-NumberOfRecords", str(count))
            self.end_headers()
            self.wfile.write(data)
            return
        if method == "GET":
            status, body = sandbox.bulk_job_info(job_id, poll=True)
            self._send(status, body)
        elif method == "PATCH":
            try:
                state = json.loads(self.body or b"{}").get("state")
            except ValueError:
                state = None
            status, body = sandbox.abort_bulk_job(job_id, state)
            self._send(status, body)
        elif method == "DELETE":
            if sandbox.delete_bulk_job(job_id):
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._error(404, "NOT_FOUND", f"job {job_id} does not exist")
        else:
            self._error(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed")


def main(argv: list[str] | None = None) -> None:
    """Serve a sandbox org until interrupted: ``python -m sandboxes.salesforce_npsp``."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--contacts", type=int, default=SandboxSizes.contacts)
    parser.add_argument("--deliveries", type=int, default=SandboxSizes.deliveries)
    parser.add_argument("--public-key", help="PEM file that verifies JWT bearer assertions")
    parser.add_argument("--org-file", help="serve this org's records instead of generated ones")
    args = parser.parse_args(argv)
    public_key = None
    if args.public_key:
        with open(args.public_key) as handle:
            public_key = handle.read()
    sizes = SandboxSizes(contacts=args.contacts, deliveries=args.deliveries)
    with SalesforceSandbox(
        seed=args.seed,
        sizes=sizes,
        port=args.port,
        jwt_public_key=public_key,
        org_file=args.org_file,
    ) as sandbox:
        print(f"Salesforce sandbox at {sandbox.url} (client id {sandbox.client_id})", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
