"""The webhook receiver over real loopback HTTP: what it queues, and what it refuses and why.

Each test serves a fresh receiver (uvicorn in a thread) over member files in a temporary
folder, and reads the real SQLite inbox it commits to.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from defusedxml.ElementTree import fromstring

from events.inbox import Change, PostgresInbox, SqliteInbox, open_inbox
from events.receiver import ReceiverSettings, create_app
from tests.events.receiver_kit import (
    OM_TOKEN,
    OTHER_SF_ORG_ID,
    SF_ORG_ID,
    cdc_body,
    new_secret,
    outbound_message,
    serve_in_thread,
    signed_headers,
    write_member,
)

ORG = "sf_trust"


class Hub:
    """A running receiver, its members folder and its inbox."""

    def __init__(self, url: str, members: Path, inbox: SqliteInbox | PostgresInbox, app) -> None:
        self.url = url
        self.members = members
        self.inbox = inbox
        self.app = app
        self.client = httpx.Client(base_url=url, timeout=10)

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None):
        return self.client.post(path, content=body, headers=headers or {})

    def webhook(self, org: str, secret: str, body: bytes, event_id: str, at=None):
        return self.post(
            f"/members/{org}/webhook", body, signed_headers(secret, body, event_id, at)
        )

    def queued(self) -> list:
        return self.inbox.received_after(0)

    def rejected(self) -> list:
        """The rejections, once the writer has recorded them (it does so without waiting)."""
        deadline = time.monotonic() + 5
        writer = self.app.state.receiver.writer
        while writer._queue.qsize() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        return self.inbox.rejections(limit=1000)


@pytest.fixture()
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    value = new_secret()
    monkeypatch.setenv(f"HUB_{ORG.upper()}_WEBHOOK_SECRET", value)
    monkeypatch.setenv(f"HUB_{ORG.upper()}_OM_TOKEN", OM_TOKEN)
    return value


@pytest.fixture()
def start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret: str
) -> Iterator[Callable[..., Hub]]:
    """Start a receiver (settings overridable) over a members folder holding ``sf_trust``."""
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HUB_SECRETS_DIR", str(tmp_path / "secrets"))
    members = tmp_path / "members"
    write_member(
        members,
        ORG,
        events={
            "webhook_secret": {"env": f"HUB_{ORG.upper()}_WEBHOOK_SECRET"},
            "outbound_message_token": {"env": f"HUB_{ORG.upper()}_OM_TOKEN"},
            "organization_id": SF_ORG_ID,
        },
    )
    stack = []

    def _start(inbox=None, **overrides) -> Hub:
        settings = ReceiverSettings(
            members_dir=members, inbox=str(tmp_path / "inbox.sqlite3"), **overrides
        )
        inbox = inbox or open_inbox(settings.inbox)
        app = create_app(settings, inbox)
        context = serve_in_thread(app)
        url = context.__enter__()
        hub = Hub(url, members, inbox, app)
        stack.append((hub, context))
        return hub

    yield _start
    for hub, context in stack:
        hub.client.close()
        context.__exit__(None, None, None)


def test_a_signed_cdc_event_is_queued_exactly_once(start, secret: str) -> None:
    hub = start()
    body = cdc_body("Contact", "UPDATE", ["003A00000000001AAA", "003A00000000002AAA"])
    first = hub.webhook(ORG, secret, body, "msg_1")
    assert first.status_code == 200 and first.json() == {"status": "queued"}
    again = hub.webhook(ORG, secret, body, "msg_1")  # the sender's retry
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    (event,) = hub.queued()
    assert (event.org_id, event.event_id, event.kind) == (ORG, "msg_1", "salesforce_cdc")
    assert event.changes == (
        Change("Contact", "update", ("003A00000000001AAA", "003A00000000002AAA")),
    )
    assert event.sent_at is not None and abs(event.sent_at - time.time()) < 60
    assert hub.rejected() == []


def test_the_postgresql_inbox(start, secret: str, postgres_dsn: str) -> None:
    """With the hub on PostgreSQL the receiver commits to its table the same way."""
    hub = start(inbox=PostgresInbox(postgres_dsn))
    body = cdc_body()
    assert hub.webhook(ORG, secret, body, "pg1").json() == {"status": "queued"}
    assert hub.webhook(ORG, secret, body, "pg1").json() == {"status": "duplicate"}
    assert hub.webhook(ORG, new_secret(), body, "pg2").status_code == 401
    assert [e.event_id for e in hub.queued()] == ["pg1"]
    assert [(r.event_id, r.status) for r in hub.rejected()] == [("pg2", 401)]


def test_cdc_change_types_become_actions(start, secret: str) -> None:
    hub = start()
    one = ["003A00000000001AAA"]
    cases = [
        ("DELETE", one, Change("Contact", "delete", tuple(one))),
        ("GAP_UPDATE", one, Change("Contact", "gap", tuple(one))),
        ("GAP_OVERFLOW", ["003*"], Change("Contact", "overflow", ())),
        ("UPDATE", ["003*"], Change("Contact", "update", ())),  # a wildcard targets nothing
        ("UNDELETE", [], Change("Contact", "undelete", ())),
    ]
    for i, (change_type, ids, _) in enumerate(cases):
        answer = hub.webhook(ORG, secret, cdc_body("Contact", change_type, ids), f"cdc{i}")
        assert answer.status_code == 200, answer.text
    changes = [e.changes for e in hub.queued()]
    assert changes == [(expected,) for _, _, expected in cases]
    assert [c[0].targeted for c in changes] == [True, False, False, False, False]


def test_the_generic_change_body_and_a_file_secret(start, tmp_path: Path) -> None:
    """A CiviCRM relay's body, signed with a secret kept in the member's own key file; a
    member added while the receiver runs needs no restart."""
    hub = start()
    key = new_secret()
    folder = tmp_path / "secrets" / "civi_centre"
    folder.mkdir(parents=True)
    (folder / "webhook.key").write_text(key + "\n")
    write_member(
        hub.members,
        "civi_centre",
        kind="civicrm",
        events={"webhook_secret": {"file": "webhook.key"}},
    )
    body = orjson.dumps(
        {
            "type": "civicrm.post",
            "changes": [{"entity": "Contact", "action": "Update", "ids": [12]}],
        }
    )
    assert hub.webhook("civi_centre", key, body, "civi-1").status_code == 200
    bare = orjson.dumps({"type": "civicrm.post"})  # names nothing: reload the member's window
    assert hub.webhook("civi_centre", key, bare, "civi-2").status_code == 200
    assert [e.changes for e in hub.queued()] == [
        (Change("Contact", "update", ("12",)),),
        (Change(None, "change", ()),),
    ]
    # The key is rotated in its file: the old one stops working at once.
    rotated = new_secret()
    (folder / "webhook.key").write_text(rotated)
    assert hub.webhook("civi_centre", key, bare, "civi-3").status_code == 401
    assert hub.webhook("civi_centre", rotated, bare, "civi-3").status_code == 200


def test_forged_and_wrongly_signed_events_are_refused(start, secret: str) -> None:
    hub = start()
    body = cdc_body()
    forged = signed_headers(secret, body, "f1")
    forged["webhook-signature"] = "v1,ZmFrZSBzaWduYXR1cmUgdGhhdCBpcyAzMiBieXRlcyE="
    tampered = signed_headers(secret, body, "f2")
    missing = signed_headers(secret, body, "f4")
    del missing["webhook-signature"]
    moved = signed_headers(secret, body, "f5")  # the timestamp is signed too
    moved["webhook-timestamp"] = str(int(moved["webhook-timestamp"]) - 1)
    words = signed_headers(secret, body, "f6") | {"webhook-timestamp": "soon"}
    answers = [
        hub.post(f"/members/{ORG}/webhook", body, forged),
        hub.webhook(ORG, new_secret(), body, "f3"),  # the wrong secret
        hub.post(f"/members/{ORG}/webhook", body + b" ", tampered),  # body changed after signing
        hub.post(f"/members/{ORG}/webhook", body, missing),
        hub.post(f"/members/{ORG}/webhook", body, moved),
        hub.post(f"/members/{ORG}/webhook", body, words),
    ]
    assert [a.status_code for a in answers] == [401] * 6
    assert hub.queued() == []
    reasons = {(r.event_id, r.status, r.reason.split(" (")[0]) for r in hub.rejected()}
    assert reasons == {
        ("f1", 401, "bad signature"),
        ("f2", 401, "bad signature"),
        ("f3", 401, "bad signature"),
        ("f4", 401, "missing webhook-id, webhook-timestamp or webhook-signature"),
        ("f5", 401, "bad signature"),
        ("f6", 401, "webhook-timestamp is not whole seconds since 1970"),
    }


def test_stale_and_future_timestamps_are_refused(start, secret: str) -> None:
    hub = start()
    now = time.time()
    stale = hub.webhook(ORG, secret, cdc_body(), "old", at=now - 301)
    future = hub.webhook(ORG, secret, cdc_body(), "new", at=now + 301)
    assert (stale.status_code, future.status_code) == (401, 401)
    assert "timestamp too old" in stale.text and "timestamp in the future" in future.text
    assert hub.queued() == []
    assert {r.event_id for r in hub.rejected()} == {"old", "new"}


def test_the_tolerance_is_configurable_both_ways(start, secret: str) -> None:
    wide = start(tolerance_seconds=600)  # beyond the package's own fixed five minutes
    assert wide.webhook(ORG, secret, cdc_body(), "w1", at=time.time() - 420).status_code == 200
    assert (
        wide.webhook(ORG, new_secret(), cdc_body(), "w2", at=time.time() - 420).status_code == 401
    )
    narrow = start(tolerance_seconds=60)
    assert narrow.webhook(ORG, secret, cdc_body(), "n1", at=time.time() - 120).status_code == 401
    assert [e.event_id for e in wide.queued()] == ["w1"]


def _raw_request(url: str, head: str, body_parts: list[bytes]) -> bytes:
    """Send a request by hand (to control Content-Length and chunking); the answer's bytes."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(head.encode())
        for part in body_parts:
            try:
                sock.sendall(part)
            except OSError:  # the server answered and closed: it read no further
                break
        return sock.recv(65536)


def test_oversized_bodies_get_413_without_being_read_whole(start, secret: str) -> None:
    hub = start(max_body=4096)
    path = f"/members/{ORG}/webhook"
    headers = signed_headers(secret, b"x", "big1")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    # Content-Length over the limit and no body sent at all: answered at once.
    declared = _raw_request(
        hub.url, f"POST {path} HTTP/1.1\r\nhost: x\r\n{head}content-length: 50000000\r\n\r\n", []
    )
    assert declared.startswith(b"HTTP/1.1 413")
    # Chunked, no Content-Length: answered once the count passes the limit, although the
    # last chunk never comes.
    chunk = b"1000\r\n" + b"x" * 4096 + b"\r\n"
    headers["webhook-id"] = "big2"
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    chunked = _raw_request(
        hub.url,
        f"POST {path} HTTP/1.1\r\nhost: x\r\n{head}transfer-encoding: chunked\r\n\r\n",
        [chunk, chunk],
    )
    assert chunked.startswith(b"HTTP/1.1 413")
    # httpx streaming a generator sends chunked too.
    streamed = hub.client.post(
        path, content=iter([b"y" * 3000] * 3), headers=headers | {"webhook-id": "big3"}
    )
    assert streamed.status_code == 413
    assert hub.queued() == []
    assert {(r.event_id, r.status) for r in hub.rejected()} == {
        ("big1", 413),
        ("big2", 413),
        ("big3", 413),
    }


def test_malformed_bodies_get_400(start, secret: str) -> None:
    hub = start()
    bodies = {
        "b1": b"{not json",
        "b2": b"[1, 2]",
        "b3": orjson.dumps({"changes": [{"entity": "Contact", "action": "explode"}]}),
        "b4": orjson.dumps({"changes": [{"entity": "Contact", "ids": [{"id": 1}]}]}),
        "b5": orjson.dumps({"ChangeEventHeader": {"changeType": "UPDATE"}}),
    }
    for event_id, body in bodies.items():
        answer = hub.webhook(ORG, secret, body, event_id)
        assert answer.status_code == 400, (event_id, answer.text)
    assert hub.queued() == []
    assert {(r.event_id, r.status) for r in hub.rejected()} == {(e, 400) for e in bodies}


def test_unknown_members_and_closed_doors(start, secret: str, monkeypatch) -> None:
    hub = start()
    body = cdc_body()
    assert hub.webhook("nobody_here", secret, body, "u1").status_code == 404
    assert hub.post("/members/..%2F..%2Fetc/webhook", body).status_code == 404
    write_member(hub.members, "no_events", kind="civicrm")
    assert hub.webhook("no_events", secret, body, "u2").status_code == 404
    assert (
        hub.post(f"/members/no_events/salesforce/outbound/{OM_TOKEN}", b"<x/>").status_code == 404
    )
    (hub.members / "broken.yaml").write_text("name: [unclosed\n")
    assert hub.webhook("broken", secret, body, "u3").status_code == 503
    # A secret not exported yet: 503 (the sender retries), then served once it is set,
    # without a restart.
    monkeypatch.delenv(f"HUB_{ORG.upper()}_WEBHOOK_SECRET")
    unavailable = hub.webhook(ORG, secret, body, "u4")
    assert unavailable.status_code == 503 and unavailable.headers["retry-after"]
    monkeypatch.setenv(f"HUB_{ORG.upper()}_WEBHOOK_SECRET", secret)
    assert hub.webhook(ORG, secret, body, "u4").status_code == 200
    assert [e.event_id for e in hub.queued()] == ["u4"]
    statuses = {(r.org_id, r.status) for r in hub.rejected()}
    assert {("nobody_here", 404), ("no_events", 404), ("broken", 503), (ORG, 503)} <= statuses
    assert secret not in str(hub.rejected())


def test_outbound_messages_are_acknowledged_and_deduplicated(start) -> None:
    hub = start()
    message = outbound_message(
        [
            ("04l000000000001AAA", "Contact", "003A00000000001AAA"),
            ("04l000000000002AAA", "Contact", "003A00000000002AAA"),
            ("04l000000000003AAA", "pmdm__ServiceDelivery__c", "a0A000000000001AAA"),
        ]
    )
    path = f"/members/{ORG}/salesforce/outbound/{OM_TOKEN}"
    answer = hub.post(path, message, {"content-type": "text/xml; charset=utf-8"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/xml")
    ack = fromstring(answer.content)
    envelope = "{http://schemas.xmlsoap.org/soap/envelope/}"
    outbound = "{http://soap.sforce.com/2005/09/outbound}"
    assert ack.tag == f"{envelope}Envelope"
    assert ack.find(f"{envelope}Body/{outbound}notificationsResponse/{outbound}Ack").text == "true"
    # Salesforce retries with the notifications grouped differently: nothing twice.
    retry = outbound_message([("04l000000000002AAA", "Contact", "003A00000000002AAA")])
    assert hub.post(path, retry).status_code == 200
    events = hub.queued()
    assert [(e.event_id, e.kind) for e in events] == [
        ("om:04l000000000001AAA", "outbound_message"),
        ("om:04l000000000002AAA", "outbound_message"),
        ("om:04l000000000003AAA", "outbound_message"),
    ]
    assert events[2].changes == (
        Change("pmdm__ServiceDelivery__c", "change", ("a0A000000000001AAA",)),
    )
    assert all(e.changes[0].targeted for e in events)


def test_outbound_message_org_id_forms_and_refusals(start, tmp_path: Path) -> None:
    hub = start()
    path = f"/members/{ORG}/salesforce/outbound/{OM_TOKEN}"
    one = [("04l000000000009AAA", "Contact", "003A00000000009AAA")]
    # The member wrote the 15-character org id; Salesforce sends 18.
    write_member(
        hub.members,
        ORG,
        events={
            "outbound_message_token": {"env": f"HUB_{ORG.upper()}_OM_TOKEN"},
            "organization_id": SF_ORG_ID[:15],
        },
    )
    assert hub.post(path, outbound_message(one, SF_ORG_ID)).status_code == 200
    wrong_org = hub.post(path, outbound_message(one, OTHER_SF_ORG_ID))
    # 18 characters are case-insensitive (the suffix holds the case); 15 are not.
    assert hub.post(path, outbound_message(one, SF_ORG_ID.lower())).status_code == 200
    case_swapped = hub.post(path, outbound_message(one, SF_ORG_ID[:15].lower()))
    wrong_token = hub.post(
        f"/members/{ORG}/salesforce/outbound/{'x' * len(OM_TOKEN)}", outbound_message(one)
    )
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        b"<lolz>&lol2;</lolz>"
    )
    assert [
        wrong_org.status_code,
        case_swapped.status_code,
        wrong_token.status_code,
        hub.post(path, bomb).status_code,
        hub.post(path, b"<soapenv:Envelope").status_code,
    ] == [403, 403, 401, 400, 400]
    assert [e.event_id for e in hub.queued()] == ["om:04l000000000009AAA"]
    rejected = hub.rejected()
    assert {r.status for r in rejected} == {403, 401, 400}
    assert all(OM_TOKEN not in r.reason for r in rejected)


def test_concurrent_webhooks_share_commits(start, secret: str) -> None:
    """100 webhooks over 20 connections at once: every one queued, in fewer transactions
    than requests (the group commit)."""
    hub = start()

    async def send() -> list[int]:
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(base_url=hub.url, timeout=20, limits=limits) as client:
            bodies = [(f"c{i}", cdc_body(ids=[f"003A{i:014d}"])) for i in range(100)]
            answers = await asyncio.gather(
                *(
                    client.post(
                        f"/members/{ORG}/webhook", content=b, headers=signed_headers(secret, b, i)
                    )
                    for i, b in bodies
                )
            )
            return [a.status_code for a in answers]

    assert asyncio.run(send()) == [200] * 100
    assert len(hub.queued()) == 100
    stats = hub.app.state.receiver.writer.stats
    assert stats.accepted == 100 and stats.commits < 100 and stats.largest_batch > 1, stats


def test_healthz(start) -> None:
    hub = start()
    answer = hub.client.get("/healthz")
    assert (answer.status_code, answer.text) == (200, "ok")
