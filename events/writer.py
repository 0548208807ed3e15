"""Group commit: one writer thread turns concurrent accepts into one inbox transaction.

Why: the inbox commits with ``synchronous=FULL``, so every commit costs an fsync (a few
milliseconds on an ordinary disk). One commit per webhook would cap the receiver at a few
hundred events a second and block the event loop while it waits. Here every request hands
its events to a queue and awaits a future; the writer thread takes everything queued (up to
``max_batch``), commits it in one transaction, then resolves the futures. A request is
answered 2xx only after its future resolves, that is after the commit: durability is the
same as committing alone, the fsync is shared.

Rejections ride along without being waited for (a refused request's answer does not depend
on its record), and are dropped, counted, when the queue is full, so a flood of bad requests
can neither hold memory nor slow the accepted ones. The queue is bounded; a full queue makes
``accept`` raise ``Overloaded`` (the receiver answers 503, senders retry).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from events.inbox import InboundEvent, Inbox

log = logging.getLogger("events.writer")

MAX_BATCH = 512
MAX_QUEUED = 4_096
KEEP_REJECTIONS = 10_000
PRUNE_EVERY = 1_000


class Overloaded(RuntimeError):
    """The writer's queue is full: answer 503 and let the sender retry."""


class InboxUnavailable(RuntimeError):
    """The inbox could not commit (disk full, database down): nothing was kept."""


@dataclass
class _Accept:
    events: Sequence[InboundEvent]
    future: asyncio.Future[list[bool]]
    loop: asyncio.AbstractEventLoop


@dataclass
class _Reject:
    org_id: str
    event_id: str | None
    status: int
    reason: str


@dataclass
class WriterStats:
    """What the writer did (for logs, the benchmark and tests)."""

    commits: int = 0
    accepted: int = 0
    rejections_recorded: int = 0
    rejections_dropped: int = 0
    largest_batch: int = 0
    errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


_STOP = object()


class GroupWriter:
    """The only writer of accepted events in this process; see the module docstring."""

    def __init__(
        self,
        inbox: Inbox,
        *,
        max_batch: int = MAX_BATCH,
        max_queued: int = MAX_QUEUED,
        keep_rejections: int = KEEP_REJECTIONS,
    ) -> None:
        self.inbox = inbox
        self.max_batch = max_batch
        self.keep_rejections = keep_rejections
        self.stats = WriterStats()
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queued)
        self._thread = threading.Thread(target=self._run, name="inbox-writer", daemon=True)
        self._since_prune = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then end the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    async def accept(self, events: Sequence[InboundEvent]) -> list[bool]:
        """Commit ``events``; per event True if new, False if already in the inbox.

        Returns only after the commit. Raises ``Overloaded`` or ``InboxUnavailable``.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[bool]] = loop.create_future()
        try:
            self._queue.put_nowait(_Accept(events, future, loop))
        except queue.Full as err:
            raise Overloaded("the inbox writer's queue is full") from err
        return await future

    def reject(self, org_id: str, event_id: str | None, status: int, reason: str) -> None:
        """Record a rejection soon (not waited for; dropped, counted, if the queue is full)."""
        try:
            self._queue.put_nowait(_Reject(org_id, event_id, status, reason))
        except queue.Full:
            with self.stats._lock:
                self.stats.rejections_dropped += 1

    def _take(self) -> tuple[list[_Accept], list[_Reject], bool]:
        first = self._queue.get()
        items = [first]
        while len(items) < self.max_batch:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        stop = any(i is _STOP for i in items)
        accepts = [i for i in items if isinstance(i, _Accept)]
        rejects = [i for i in items if isinstance(i, _Reject)]
        return accepts, rejects, stop

    def _run(self) -> None:
        while True:
            accepts, rejects, stop = self._take()
            if accepts:
                self._commit(accepts)
            if rejects:
                self._record(rejects)
            if stop:
                # Drain what came in after the stop was queued: never leave a waiter hanging.
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        return
                    if isinstance(item, _Accept):
                        self._commit([item])

    def _commit(self, accepts: list[_Accept]) -> None:
        events = [e for a in accepts for e in a.events]
        try:
            fresh = self.inbox.accept_many(events)
        except Exception as err:  # the inbox's own error: every waiter must hear of it
            log.error("inbox commit failed for %d event(s): %s", len(events), type(err).__name__)
            with self.stats._lock:
                self.stats.errors += 1
            for a in accepts:
                a.loop.call_soon_threadsafe(_fail, a.future, InboxUnavailable(str(err)))
            return
        with self.stats._lock:
            self.stats.commits += 1
            self.stats.accepted += sum(fresh)
            self.stats.largest_batch = max(self.stats.largest_batch, len(events))
        start = 0
        for a in accepts:
            part = fresh[start : start + len(a.events)]
            start += len(a.events)
            a.loop.call_soon_threadsafe(_resolve, a.future, part)

    def _record(self, rejects: list[_Reject]) -> None:
        try:
            self.inbox.reject_many([(r.org_id, r.event_id, r.status, r.reason) for r in rejects])
            self._since_prune += len(rejects)
            if self._since_prune >= PRUNE_EVERY:
                self._since_prune = 0
                self.inbox.prune_rejections(self.keep_rejections)
        except Exception as err:
            log.error("could not record %d rejection(s): %s", len(rejects), type(err).__name__)
            with self.stats._lock:
                self.stats.rejections_dropped += len(rejects)
            return
        with self.stats._lock:
            self.stats.rejections_recorded += len(rejects)


def _resolve(future: asyncio.Future[list[bool]], value: list[bool]) -> None:
    if not future.done():  # the client may have gone; its event is committed all the same
        future.set_result(value)


def _fail(future: asyncio.Future[list[bool]], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)
