"""The durable inbox: every accepted event is committed here before the receiver answers 2xx.

Why its own store: the receiver must never wait on the warehouse (DuckDB has one writer),
and an event acknowledged to a CRM is an event the CRM will not send again, so it has to
survive a SIGKILL of the receiver right after the answer. By default the inbox is a SQLite
file in WAL mode (readers never block the writer; ``synchronous=FULL`` makes each commit
durable); when the hub runs on PostgreSQL it is a table there (``HUB_EVENTS_INBOX`` set to a
``postgresql://`` URL).

What is kept is what the hub needs to act, never the payload: the member, the sender's event
id (to answer a repeat with 200 and not process it twice), which kind of door it came
through, and per change the entity, the action and the record ids. A Salesforce CDC event or
a CiviCRM webhook body may hold a person's changed fields; those are not stored.

Life of an event (``state``): ``received`` (committed by the receiver) → ``batched`` (the
inbox sensor coalesced it with the member's other new events into batch ``batch_id``; the
batch id is the run request's ``run_key``) → ``launched`` (the batch's run started:
``run_id``) → ``succeeded`` or ``failed``. Rejected requests are kept apart, in
``rejections``, with the status answered and why, so ``hub events`` can show them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

EventKind = Literal["standard_webhook", "salesforce_cdc", "outbound_message", "file_drop"]
EventState = Literal["received", "batched", "launched", "succeeded", "failed"]

STATES: tuple[EventState, ...] = ("received", "batched", "launched", "succeeded", "failed")
ACTIONS = frozenset({"create", "update", "delete", "undelete", "change", "gap", "overflow"})
"""Normalised change actions. ``change`` = something changed, ids maybe; ``gap`` and
``overflow`` = the sender lost track (Salesforce CDC GAP_* and overflow events): reload the
entity's window rather than trust the ids."""

MAX_ID_LENGTH = 255
MAX_TEXT = 500


@dataclass(frozen=True)
class Change:
    """One change an event reports: which entity, what happened, to which records.

    ``entity`` None means "something of this member's changed" (a file drop, a webhook that
    names nothing): reload the member's window. Empty ``record_ids`` means the same for that
    entity.
    """

    entity: str | None
    action: str = "change"
    record_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown change action {self.action!r} (one of {sorted(ACTIONS)})")

    @property
    def targeted(self) -> bool:
        """True when the change names its records and the sender did not lose track."""
        return (
            bool(self.record_ids)
            and self.entity is not None
            and self.action
            not in (
                "gap",
                "overflow",
            )
        )

    def to_json(self) -> dict[str, Any]:
        return {"entity": self.entity, "action": self.action, "ids": list(self.record_ids)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Change:
        return cls(data.get("entity"), data.get("action", "change"), tuple(data.get("ids", ())))


@dataclass(frozen=True)
class InboundEvent:
    """An event the receiver accepted (signature, timestamp and size already checked)."""

    org_id: str
    event_id: str
    kind: EventKind
    changes: tuple[Change, ...] = ()
    sent_at: float | None = None
    """The sender's timestamp (``webhook-timestamp``), seconds since the epoch, if any."""


@dataclass(frozen=True)
class StoredEvent:
    """An event as the inbox holds it."""

    seq: int
    org_id: str
    event_id: str
    kind: str
    received_at: float
    sent_at: float | None
    changes: tuple[Change, ...]
    state: str
    batch_id: str | None = None
    run_id: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class BatchSummary:
    """One batch as the sensors and ``hub events`` see it: whose, how far along, how big."""

    batch_id: str
    org_id: str
    state: str
    run_id: str | None
    detail: str | None
    events: int
    first_seq: int
    last_seq: int
    first_received: float
    last_received: float


@dataclass(frozen=True)
class Rejection:
    """A request the receiver refused: answered ``status`` for ``reason``; nothing queued."""

    seq: int
    org_id: str
    event_id: str | None
    received_at: float
    status: int
    reason: str


@dataclass
class _Dialect:
    """The few differences between SQLite and PostgreSQL the inbox's SQL meets."""

    name: str
    placeholder: str = "?"
    serial: str = "INTEGER PRIMARY KEY AUTOINCREMENT"
    schema: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def sql(self, text: str) -> str:
        text = text.replace("{s}", self.schema)
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)


def _ddl(d: _Dialect) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {d.schema}inbox_event (
            seq {d.serial},
            org_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            received_at DOUBLE PRECISION NOT NULL,
            sent_at DOUBLE PRECISION,
            changes TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'received',
            batch_id TEXT,
            run_id TEXT,
            detail TEXT,
            UNIQUE (org_id, event_id)
        )""",
        f"CREATE INDEX IF NOT EXISTS inbox_event_state ON {d.schema}inbox_event (state, seq)",
        f"CREATE INDEX IF NOT EXISTS inbox_event_batch ON {d.schema}inbox_event (batch_id)",
        f"""CREATE TABLE IF NOT EXISTS {d.schema}inbox_rejection (
            seq {d.serial},
            org_id TEXT NOT NULL,
            event_id TEXT,
            received_at DOUBLE PRECISION NOT NULL,
            status INTEGER NOT NULL,
            reason TEXT NOT NULL
        )""",
    ]


def _clip(text: str | None, limit: int = MAX_TEXT) -> str | None:
    """Bound what a sender controls (ids, org names) before it is stored or shown."""
    if text is None:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _event_row(event: InboundEvent, now: float) -> tuple[Any, ...]:
    if not event.event_id or len(event.event_id) > MAX_ID_LENGTH:
        raise ValueError(f"event id must be 1-{MAX_ID_LENGTH} characters")
    changes = json.dumps([c.to_json() for c in event.changes], separators=(",", ":"))
    return (event.org_id, event.event_id, event.kind, now, event.sent_at, changes)


def _stored(row: Sequence[Any]) -> StoredEvent:
    seq, org, eid, kind, received, sent, changes, state, batch, run, detail = row
    return StoredEvent(
        seq=int(seq),
        org_id=org,
        event_id=eid,
        kind=kind,
        received_at=float(received),
        sent_at=None if sent is None else float(sent),
        changes=tuple(Change.from_json(c) for c in json.loads(changes)),
        state=state,
        batch_id=batch,
        run_id=run,
        detail=detail,
    )


_COLUMNS = (
    "seq, org_id, event_id, kind, received_at, sent_at, changes, state, batch_id, run_id, detail"
)


class Inbox(Protocol):
    """What the receiver, the sensors and ``hub events`` need of an inbox."""

    def accept(self, event: InboundEvent) -> bool: ...
    def accept_many(self, events: Sequence[InboundEvent]) -> list[bool]: ...
    def reject(self, org_id: str, event_id: str | None, status: int, reason: str) -> None: ...
    def reject_many(self, rejections: Sequence[tuple[str, str | None, int, str]]) -> None: ...
    def prune_rejections(self, keep: int) -> int: ...
    def received_after(self, seq: int, limit: int = 10_000) -> list[StoredEvent]: ...
    def mark_batched(self, seqs: Iterable[int], batch_id: str) -> int: ...
    def mark_batch(
        self,
        batch_id: str,
        state: EventState,
        *,
        run_id: str | None = None,
        detail: str | None = None,
    ) -> int: ...
    def batch(self, batch_id: str) -> list[StoredEvent]: ...
    def recent(self, org_id: str | None = None, limit: int = 50) -> list[StoredEvent]: ...
    def batches(
        self,
        org_id: str | None = None,
        states: Sequence[EventState] | None = None,
        limit: int = 50,
    ) -> list[BatchSummary]: ...
    def note_batch(self, batch_id: str, detail: str) -> int: ...
    def rejections(self, org_id: str | None = None, limit: int = 50) -> list[Rejection]: ...
    def seen(self, org_id: str, event_id: str) -> bool: ...


class _SqlInbox:
    """The inbox's logic over a DB-API connection; the subclasses open the connection."""

    dialect: _Dialect

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        raise NotImplementedError

    def _setup(self) -> None:
        with self._tx() as cur:
            for statement in _ddl(self.dialect):
                cur.execute(statement)

    def accept(self, event: InboundEvent) -> bool:
        """Commit ``event``; True if new, False if this member already sent this event id.

        Returns only once the event is durable: the caller may answer 2xx after it.
        """
        return self.accept_many([event])[0]

    def accept_many(self, events: Sequence[InboundEvent]) -> list[bool]:
        """Commit several events in one transaction (the receiver's group commit)."""
        now = time.time()
        rows = [_event_row(e, now) for e in events]
        sql = self.dialect.sql(
            "INSERT INTO {s}inbox_event (org_id, event_id, kind, received_at, sent_at, changes)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (org_id, event_id) DO NOTHING"
        )
        fresh: list[bool] = []
        with self._tx() as cur:
            for row in rows:
                cur.execute(sql, row)
                fresh.append(cur.rowcount == 1)
        return fresh

    def reject(self, org_id: str, event_id: str | None, status: int, reason: str) -> None:
        """Record a refused request (never its body)."""
        self.reject_many([(org_id, event_id, status, reason)])

    def reject_many(self, rejections: Sequence[tuple[str, str | None, int, str]]) -> None:
        """Record several refused requests ``(org_id, event_id, status, reason)`` in one
        transaction: the receiver's writer batches them with the accepts, so a flood of bad
        requests costs one commit per batch, not one per request."""
        now = time.time()
        rows = [
            (_clip(org, 100), _clip(eid, MAX_ID_LENGTH), now, status, _clip(reason))
            for org, eid, status, reason in rejections
        ]
        sql = self.dialect.sql(
            "INSERT INTO {s}inbox_rejection (org_id, event_id, received_at, status, "
            "reason) VALUES (?, ?, ?, ?, ?)"
        )
        with self._tx() as cur:
            for row in rows:
                cur.execute(sql, row)

    def prune_rejections(self, keep: int) -> int:
        """Delete all but the newest ``keep`` rejections; how many went.

        Why: anyone can send a bad request, and each is recorded; without a bound a flood of
        them would fill the disk. Accepted events are never pruned here.
        """
        with self._tx() as cur:
            cur.execute(self.dialect.sql("SELECT MAX(seq) FROM {s}inbox_rejection"))
            top = cur.fetchone()[0]
            if top is None:
                return 0
            cur.execute(
                self.dialect.sql("DELETE FROM {s}inbox_rejection WHERE seq <= ?"),
                (int(top) - keep,),
            )
            return cur.rowcount

    def received_after(self, seq: int, limit: int = 10_000) -> list[StoredEvent]:
        """Events still ``received`` with a sequence number above ``seq``, oldest first."""
        with self._tx() as cur:
            cur.execute(
                self.dialect.sql(
                    f"SELECT {_COLUMNS} FROM {{s}}inbox_event WHERE state = 'received' "
                    "AND seq > ? ORDER BY seq LIMIT ?"
                ),
                (seq, limit),
            )
            return [_stored(r) for r in cur.fetchall()]

    def mark_batched(self, seqs: Iterable[int], batch_id: str) -> int:
        """Put events still ``received`` into ``batch_id``; how many moved (idempotent)."""
        seqs = list(seqs)
        moved = 0
        with self._tx() as cur:
            for start in range(0, len(seqs), 500):
                chunk = seqs[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                cur.execute(
                    self.dialect.sql(
                        "UPDATE {s}inbox_event SET state = 'batched', batch_id = ? "
                        f"WHERE state = 'received' AND seq IN ({marks})"
                    ),
                    (batch_id, *chunk),
                )
                moved += cur.rowcount
        return moved

    def mark_batch(
        self,
        batch_id: str,
        state: EventState,
        *,
        run_id: str | None = None,
        detail: str | None = None,
    ) -> int:
        """Move every event of ``batch_id`` to ``state`` (keeping a known run id)."""
        if state not in STATES:
            raise ValueError(f"unknown event state {state!r}")
        with self._tx() as cur:
            cur.execute(
                self.dialect.sql(
                    "UPDATE {s}inbox_event SET state = ?, run_id = COALESCE(?, run_id), "
                    "detail = COALESCE(?, detail) WHERE batch_id = ?"
                ),
                (state, run_id, _clip(detail), batch_id),
            )
            return cur.rowcount

    def batch(self, batch_id: str) -> list[StoredEvent]:
        """The events coalesced into ``batch_id``, oldest first."""
        with self._tx() as cur:
            cur.execute(
                self.dialect.sql(
                    f"SELECT {_COLUMNS} FROM {{s}}inbox_event WHERE batch_id = ? ORDER BY seq"
                ),
                (batch_id,),
            )
            return [_stored(r) for r in cur.fetchall()]

    def recent(self, org_id: str | None = None, limit: int = 50) -> list[StoredEvent]:
        """The newest events, of one member or all, newest first."""
        where, args = ("WHERE org_id = ? ", (org_id,)) if org_id else ("", ())
        with self._tx() as cur:
            cur.execute(
                self.dialect.sql(
                    f"SELECT {_COLUMNS} FROM {{s}}inbox_event {where}ORDER BY seq DESC LIMIT ?"
                ),
                (*args, limit),
            )
            return [_stored(r) for r in cur.fetchall()]

    def batches(
        self,
        org_id: str | None = None,
        states: Sequence[EventState] | None = None,
        limit: int = 50,
    ) -> list[BatchSummary]:
        """The newest batches (of one member, in some states), newest first.

        The inbox sensor asks for the batches still ``batched`` or ``launched`` on every tick,
        to request again a run a daemon crash left unrequested and to follow runs to their end.
        """
        where: list[str] = ["batch_id IS NOT NULL"]
        args: list[Any] = []
        if org_id:
            where.append("org_id = ?")
            args.append(org_id)
        if states:
            bad = [s for s in states if s not in STATES]
            if bad:
                raise ValueError(f"unknown event state(s) {bad}")
            where.append(f"state IN ({', '.join('?' * len(states))})")
            args.extend(states)
        with self._tx() as cur:
            cur.execute(
                self.dialect.sql(
                    "SELECT batch_id, org_id, MAX(state), MAX(run_id), MAX(detail), COUNT(*), "
                    "MIN(seq), MAX(seq), MIN(received_at), MAX(received_at) "
                    f"FROM {{s}}inbox_event WHERE {' AND '.join(where)} "
                    "GROUP BY batch_id, org_id ORDER BY MAX(seq) DESC LIMIT ?"
                ),
                (*args, limit),
            )
            return [
                BatchSummary(
                    batch_id=b,
                    org_id=o,
                    state=st,
                    run_id=r,
                    detail=d,
                    events=int(n),
                    first_seq=int(lo),
                    last_seq=int(hi),
                    first_received=float(first),
                    last_received=float(last),
                )
                for b, o, st, r, d, n, lo, hi, first, last in cur.fetchall()
            ]

    def note_batch(self, batch_id: str, detail: str) -> int:
        """Say what became of a batch (e.g. how its load read the records) without moving it."""
        with self._tx() as cur:
            cur.execute(
                self.dialect.sql("UPDATE {s}inbox_event SET detail = ? WHERE batch_id = ?"),
                (_clip(detail), batch_id),
            )
            return cur.rowcount

    def rejections(self, org_id: str | None = None, limit: int = 50) -> list[Rejection]:
        """The newest refused requests, of one member or all, newest first."""
        where, args = ("WHERE org_id = ? ", (org_id,)) if org_id else ("", ())
        with self._tx() as cur:
            cur.execute(
                self.dialect.sql(
                    "SELECT seq, org_id, event_id, received_at, status, reason FROM "
                    f"{{s}}inbox_rejection {where}ORDER BY seq DESC LIMIT ?"
                ),
                (*args, limit),
            )
            return [
                Rejection(int(s), o, e, float(r), int(st), reason)
                for s, o, e, r, st, reason in cur.fetchall()
            ]

    def seen(self, org_id: str, event_id: str) -> bool:
        """Whether this member's event id is already in the inbox."""
        with self._tx() as cur:
            cur.execute(
                self.dialect.sql("SELECT 1 FROM {s}inbox_event WHERE org_id = ? AND event_id = ?"),
                (org_id, event_id),
            )
            return cur.fetchone() is not None


class SqliteInbox(_SqlInbox):
    """The default inbox: one SQLite file in WAL mode, safe across processes.

    One connection per thread (sqlite3 connections must not be shared across threads);
    ``synchronous=FULL`` so a commit survives the process being killed right after it.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.dialect = _Dialect("sqlite")
        self._local = threading.local()
        self._setup()

    def _connection(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA busy_timeout=30000")
            self._local.con = con
        return con

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Cursor]:
        con = self._connection()
        cur = con.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        else:
            cur.execute("COMMIT")
        finally:
            cur.close()

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None


class PostgresInbox(_SqlInbox):
    """The inbox as tables in schema ``hub_events`` of a PostgreSQL database."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.dialect = _Dialect(
            "postgres", placeholder="%s", serial="BIGSERIAL PRIMARY KEY", schema="hub_events."
        )
        with self._tx() as cur:
            cur.execute("CREATE SCHEMA IF NOT EXISTS hub_events")
        self._setup()

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        import psycopg

        with psycopg.connect(self.dsn) as con, con.cursor() as cur:
            yield cur


def inbox_location(home: Path) -> str:
    """Where the inbox is: ``HUB_EVENTS_INBOX`` (a file path or a postgresql:// URL), or
    ``<HUB_HOME>/events/inbox.sqlite3``."""
    return os.environ.get("HUB_EVENTS_INBOX") or str(home / "events" / "inbox.sqlite3")


def open_inbox(location: str | Path) -> SqliteInbox | PostgresInbox:
    """The inbox at ``location``: a PostgreSQL URL or a SQLite file path."""
    text = str(location)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresInbox(text)
    return SqliteInbox(Path(text))
