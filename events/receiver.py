"""The webhook receiver: per-member endpoints that check, then durably queue, change events.

Run: ``python -m events.receiver --host 127.0.0.1 --port 8787`` (``hub serve`` starts it).
It reads ``HUB_HOME`` / ``HUB_MEMBERS_DIR`` / ``HUB_EVENTS_INBOX`` like the rest of the hub.

Endpoints (``{org_id}`` is the member's file name):

- ``POST /members/{org_id}/webhook``: Standard Webhooks (``webhook-id``,
  ``webhook-timestamp``, ``webhook-signature``), verified with the ``standardwebhooks``
  package against the member's ``events.webhook_secret``. Body: a Salesforce CDC event, or
  the hub's generic ``{"type": ..., "changes": [...]}`` (CiviCRM relays).
- ``POST /members/{org_id}/salesforce/outbound/{token}``: Salesforce Outbound Messages
  (SOAP), the token compared in constant time with ``events.outbound_message_token`` and the
  message's ``OrganizationId`` with ``events.organization_id``; answered with the ``Ack``.
- ``GET /healthz``: 200 ``ok``.

Why this order of checks: everything cheap and body-free first (member, door, size,
headers, timestamp), then the body is read, counting bytes, never past the limit; then the
signature; only then is the body parsed. An event is committed to the inbox (group commit,
``events.writer``) before the 2xx. Every refusal is logged (member, reason, event id, never
the body or the path's token) and recorded in the inbox's rejections for ``hub events``.

Statuses: 200 queued or duplicate; 400 malformed body; 401 bad/missing signature, stale or
future timestamp, wrong Outbound Message token; 403 Outbound Message from another Salesforce
org; 404 unknown member, or the member has not configured that door; 413 body over the limit;
503 the member's file or secret is broken, or the inbox cannot commit (senders retry, so
nothing is lost while the operator fixes it).
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio.to_thread
from standardwebhooks import WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from connectors.salesforce_npsp.ids import id15
from events.bodies import ACK, BodyError, parse_json_event, parse_outbound_message
from events.directory import Entry, MemberDirectory
from events.inbox import MAX_ID_LENGTH, Change, InboundEvent, Inbox, inbox_location, open_inbox
from events.writer import GroupWriter, InboxUnavailable, Overloaded

log = logging.getLogger("events.receiver")

DEFAULT_PORT = 8787
DEFAULT_TOLERANCE_SECONDS = 300
DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 256
LIBRARY_TOLERANCE_SECONDS = 300
"""The ``standardwebhooks`` package checks the timestamp itself, with a fixed 5 minutes."""
PARSE_IN_THREAD_BYTES = 64 * 1024
"""Bodies above this are parsed in a worker thread, so a big one never stalls the loop."""


@dataclass(frozen=True)
class ReceiverSettings:
    """The receiver's knobs, from ``HUB_EVENTS_*`` or given directly (tests)."""

    members_dir: Path
    inbox: str
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS
    max_body: int = DEFAULT_MAX_BODY
    max_connections: int = DEFAULT_MAX_CONNECTIONS

    @classmethod
    def from_env(cls) -> ReceiverSettings:
        from pipelines.settings import HubSettings

        hub = HubSettings.from_env()
        return cls(
            members_dir=hub.members_dir,
            inbox=inbox_location(hub.home),
            tolerance_seconds=_positive("HUB_EVENTS_TOLERANCE_SECONDS", DEFAULT_TOLERANCE_SECONDS),
            max_body=_positive("HUB_EVENTS_MAX_BODY", DEFAULT_MAX_BODY),
            max_connections=_positive("HUB_EVENTS_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS),
        )


def _positive(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{name}={text!r} must be a whole number of at least 1")
    return int(text)


class Refused(Exception):
    """A request the receiver answers with ``status`` (and records) instead of queueing."""

    def __init__(self, status: int, reason: str, event_id: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.event_id = event_id


class Receiver:
    """The endpoints' logic; ``create_app`` wires it into Starlette."""

    def __init__(self, settings: ReceiverSettings, inbox: Inbox) -> None:
        self.settings = settings
        self.directory = MemberDirectory(settings.members_dir)
        self.writer = GroupWriter(inbox)
        self._loading: dict[str, asyncio.Lock] = {}

    # -- shared steps ---------------------------------------------------------------------

    async def _entry(self, org_id: str) -> Entry:
        entry = self.directory.cached(org_id)
        if entry is None:
            if self.directory.member_file(org_id) is None:
                raise Refused(404, "unknown member")
            # One load per member at a time: a burst arriving before the first load ends
            # waits for it instead of loading the same file hundreds of times.
            lock = self._loading.setdefault(org_id, asyncio.Lock())
            async with lock:
                entry = self.directory.cached(org_id)
                if entry is None:
                    entry = await anyio.to_thread.run_sync(self.directory.load, org_id)
            if entry is None:
                raise Refused(404, "unknown member")
        if entry.error is not None:
            raise Refused(
                503, f"member file does not load ({entry.error}); run `hub check {org_id}`"
            )
        return entry

    def _check_length(self, request: Request) -> None:
        length = request.headers.get("content-length")
        if length is not None:
            if not (length.isascii() and length.isdigit()):
                raise Refused(400, "Content-Length is not a number")
            if len(length) > 18 or int(length) > self.settings.max_body:
                raise Refused(
                    413,
                    f"body of {length[:20]} bytes is over the limit of {self.settings.max_body}",
                )

    async def _body(self, request: Request) -> bytes:
        """The body, read chunk by chunk and abandoned as soon as it passes the limit (a
        chunked body has no Content-Length to check first)."""
        limit = self.settings.max_body
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise Refused(413, f"body is over the limit of {limit} bytes")
                chunks.append(chunk)
        except ClientDisconnect as err:
            raise Refused(400, "the client went away before sending the whole body") from err
        return b"".join(chunks)

    async def _queue(self, events: list[InboundEvent]) -> list[bool]:
        try:
            return await self.writer.accept(events)
        except Overloaded as err:
            raise Refused(503, "receiver busy; retry") from err
        except InboxUnavailable as err:
            raise Refused(503, "the inbox cannot commit; retry") from err

    def refuse(self, org_id: str, refused: Refused) -> Response:
        log.warning(
            "rejected: member=%s status=%d reason=%s event_id=%s",
            _shown(org_id, 100),
            refused.status,
            refused.reason,
            _shown(refused.event_id or "-", MAX_ID_LENGTH),
        )
        self.writer.reject(org_id, refused.event_id, refused.status, refused.reason)
        headers = {"Retry-After": "5"} if refused.status == 503 else None
        return PlainTextResponse(refused.reason + "\n", refused.status, headers=headers)

    # -- Standard Webhooks ----------------------------------------------------------------

    async def webhook(self, request: Request) -> Response:
        org_id = request.path_params["org_id"]
        event_id = request.headers.get("webhook-id")
        try:
            return await self._webhook(request, org_id, event_id)
        except Refused as refused:
            refused.event_id = refused.event_id or event_id
            return self.refuse(org_id, refused)

    async def _webhook(self, request: Request, org_id: str, event_id: str | None) -> Response:
        entry = await self._entry(org_id)
        doors = entry.doors
        assert doors is not None
        if not doors.webhook_configured:
            raise Refused(404, "this member has no webhook endpoint (events.webhook_secret)")
        if doors.webhook is None:
            log.error("member %s: %s", org_id, doors.problems["webhook_secret"])
            raise Refused(503, "the member's webhook secret is not available; see hub check")
        self._check_length(request)
        stamp = request.headers.get("webhook-timestamp")
        signature = request.headers.get("webhook-signature")
        if not (event_id and stamp and signature):
            raise Refused(401, "missing webhook-id, webhook-timestamp or webhook-signature")
        if len(event_id) > MAX_ID_LENGTH:
            raise Refused(400, f"webhook-id is over {MAX_ID_LENGTH} characters", "-")
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
            raise Refused(401, "webhook-timestamp is not whole seconds since 1970")
        sent_at = int(stamp)
        skew = time.time() - sent_at
        tolerance = self.settings.tolerance_seconds
        if skew > tolerance:
            raise Refused(401, f"timestamp too old ({skew:.0f} s; tolerance {tolerance} s)")
        if skew < -tolerance:
            raise Refused(401, f"timestamp in the future ({-skew:.0f} s; tolerance {tolerance} s)")
        body = await self._body(request)
        headers = {
            "webhook-id": event_id,
            "webhook-timestamp": stamp,
            "webhook-signature": signature,
        }
        if not _verified(doors.webhook, body, headers, sent_at):
            raise Refused(401, "bad signature")
        try:
            if len(body) > PARSE_IN_THREAD_BYTES:
                parsed = await anyio.to_thread.run_sync(parse_json_event, body)
            else:
                parsed = parse_json_event(body)
        except BodyError as err:
            raise Refused(400, f"malformed body: {err}") from err
        event = InboundEvent(org_id, event_id, parsed.kind, parsed.changes, float(sent_at))
        (fresh,) = await self._queue([event])
        return JSONResponse({"status": "queued" if fresh else "duplicate"})

    # -- Salesforce Outbound Messages -----------------------------------------------------

    async def outbound(self, request: Request) -> Response:
        org_id = request.path_params["org_id"]
        try:
            return await self._outbound(request, org_id, request.path_params["token"])
        except Refused as refused:
            return self.refuse(org_id, refused)

    async def _outbound(self, request: Request, org_id: str, token: str) -> Response:
        entry = await self._entry(org_id)
        doors = entry.doors
        assert doors is not None
        if not doors.outbound_configured:
            raise Refused(404, "this member has no Outbound Message endpoint")
        if doors.outbound_token is None or doors.salesforce_org15 is None:
            log.error("member %s: %s", org_id, doors.problems.get("outbound_message_token"))
            raise Refused(503, "the member's Outbound Message token is not available")
        if not hmac.compare_digest(token.encode(), doors.outbound_token):
            raise Refused(401, "wrong Outbound Message token")
        self._check_length(request)
        body = await self._body(request)
        try:
            if len(body) > PARSE_IN_THREAD_BYTES:
                message = await anyio.to_thread.run_sync(parse_outbound_message, body)
            else:
                message = parse_outbound_message(body)
        except BodyError as err:
            raise Refused(400, f"malformed Outbound Message: {err}") from err
        if id15(message.organization_id) != doors.salesforce_org15:
            raise Refused(
                403,
                "OrganizationId is not the member's events.organization_id",
                _notification_ids(message.notifications),
            )
        # One inbox event per notification: Salesforce retries notifications, possibly
        # grouped differently, and the notification id is what stays the same.
        events = [
            InboundEvent(
                org_id,
                f"om:{n.notification_id}",
                "outbound_message",
                (Change(n.entity, "change", (n.record_id,)),),
            )
            for n in message.notifications
        ]
        await self._queue(events)
        return Response(ACK, media_type="text/xml; charset=utf-8")


def _shown(text: str, limit: int) -> str:
    """A sender-controlled value as it may appear in a log line: cut, and quoted if it holds
    anything but plain printable characters (a decoded ``%0A`` in the path must not start a
    forged log line)."""
    text = text[:limit]
    return text if text.isprintable() and " " not in text else repr(text)


def _notification_ids(notifications: tuple) -> str:
    return ",".join(n.notification_id for n in notifications)[:MAX_ID_LENGTH]


def _verified(webhook, body: bytes, headers: dict[str, str], sent_at: int) -> bool:
    """Check the signature with the ``standardwebhooks`` package.

    ``Webhook.verify`` also checks the timestamp, with its own fixed five minutes; the
    receiver's tolerance (already checked) may be wider, and then the package's ``sign``
    computes the expected signature for the same comparison ``verify`` makes.
    """
    if abs(time.time() - sent_at) < LIBRARY_TOLERANCE_SECONDS - 5:
        try:
            webhook.verify(body, headers, json_parse=False)
        except WebhookVerificationError:
            return False
        return True
    expected = webhook.sign(headers["webhook-id"], datetime.fromtimestamp(sent_at, UTC), body)
    return any(
        hmac.compare_digest(expected.encode(), given.encode())
        for given in headers["webhook-signature"].split(" ")
    )


async def _healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


def create_app(settings: ReceiverSettings | None = None, inbox: Inbox | None = None) -> Starlette:
    """The receiver as an ASGI app (its writer thread starts and stops with the app)."""
    settings = settings or ReceiverSettings.from_env()
    inbox = inbox if inbox is not None else open_inbox(settings.inbox)
    receiver = Receiver(settings, inbox)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        receiver.writer.start()
        try:
            yield
        finally:
            receiver.writer.stop()

    app = Starlette(
        routes=[
            Route("/healthz", _healthz, methods=["GET"]),
            Route("/members/{org_id}/webhook", receiver.webhook, methods=["POST"]),
            Route(
                "/members/{org_id}/salesforce/outbound/{token}",
                receiver.outbound,
                methods=["POST"],
            ),
        ],
        lifespan=lifespan,
    )
    app.state.receiver = receiver
    return app


def main(argv: list[str] | None = None) -> None:
    """``python -m events.receiver``: serve on uvicorn until SIGINT/SIGTERM."""
    import uvicorn

    parser = argparse.ArgumentParser(description="Outcomes Hub webhook receiver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = ReceiverSettings.from_env()
    app = create_app(settings)
    log.info(
        "receiver for members in %s, inbox %s, on %s:%d",
        settings.members_dir,
        _shown_inbox(settings.inbox),
        args.host,
        args.port,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        # No access log: the Outbound Message path carries the member's token.
        access_log=False,
        log_level=args.log_level,
        limit_concurrency=settings.max_connections,
        timeout_graceful_shutdown=5,
    )


def _shown_inbox(location: str) -> str:
    """The inbox location without a password, if it is a database URL."""
    from urllib.parse import urlsplit

    parts = urlsplit(location)
    if parts.scheme.startswith("postgres") and parts.password:
        return location.replace(f":{parts.password}@", ":***@", 1)
    return location


if __name__ == "__main__":
    main()
