"""What a CRM sends when a record changes, for the sandboxes to send to the hub's receiver.

Three senders, each a background thread with a queue, so that the sandbox answers the API
call that made the change at once (as a CRM does) and delivers the notification afterwards:

- :class:`StandardWebhookSender`: a Standard Webhooks POST (headers ``webhook-id``,
  ``webhook-timestamp``, ``webhook-signature``, signed with the ``standardwebhooks``
  package) whose body is the hub's generic change body, as a CiviCRM extension or relay
  sends it: ``{"type": "civicrm.change", "changes": [{"entity", "action", "ids"}]}``;
- :class:`CdcRelay`: the same signing, with a Salesforce Change Data Capture event as the
  body, wrapped as relays (Pub/Sub API subscribers) pass it on:
  ``{"schema", "payload": {"ChangeEventHeader": {...}}, "event": {"replayId"}}``;
- :class:`OutboundMessageSender`: a Salesforce Outbound Message, the SOAP ``notifications``
  envelope (``OrganizationId``, ``ActionId``, ``SessionId``, ``EnterpriseUrl``,
  ``PartnerUrl``, up to 100 ``Notification`` elements each with ``Id`` and ``sObject``);
  delivered only when the answer is 2xx *and* carries ``<Ack>true</Ack>``.

Like Salesforce (which retries an unacknowledged Outbound Message for 24 hours), a sender
retries a delivery that failed (a non-2xx answer, no answer) a few times with a growing
pause, then gives up and records it. Standard Webhooks retries keep the message id and send
a fresh timestamp and signature, as Svix does. Bodies carry ids, never a person's fields.
"""

from __future__ import annotations

import base64
import itertools
import json
import queue
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import escape

import httpx
from standardwebhooks.webhooks import Webhook

RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)
"""Pauses before the 2nd..5th attempt: five attempts in all, over about 7.5 s."""

OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"


def new_webhook_secret() -> str:
    """A fresh Standard Webhooks secret, ``whsec_`` + base64 of 24 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@dataclass(frozen=True)
class Delivery:
    """What became of one notification: delivered (with the answer's status) or not."""

    message_id: str
    delivered: bool
    status: int | None
    attempts: int
    sent_at: float  # when the first attempt went out (time.time())


@dataclass(frozen=True)
class _Message:
    message_id: str
    body: bytes
    content_type: str
    created: float


class _Sender:
    """A queue of messages posted to one URL by one thread, retried on failure."""

    def __init__(
        self, url: str, *, retry_delays: Sequence[float] = RETRY_DELAYS, timeout: float = 10.0
    ) -> None:
        self.url = url
        self.retry_delays = tuple(retry_delays)
        self.deliveries: list[Delivery] = []
        self._queue: queue.Queue[_Message | None] = queue.Queue()
        self._client = httpx.Client(timeout=timeout)
        self._idle = threading.Condition()
        self._pending = 0
        self._thread = threading.Thread(target=self._work, name=type(self).__name__, daemon=True)
        self._thread.start()

    # -- subclasses
    def _headers(self, message: _Message) -> dict[str, str]:
        return {"content-type": message.content_type}

    def _accepted(self, response: httpx.Response) -> bool:
        return 200 <= response.status_code < 300

    # -- queue
    def _enqueue(self, body: bytes, content_type: str) -> str:
        message = _Message(f"msg_{uuid.uuid4().hex}", body, content_type, time.time())
        with self._idle:
            self._pending += 1
        self._queue.put(message)
        return message.message_id

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until every queued message was delivered or given up; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self) -> None:
        """Stop after the messages already queued (their retries included)."""
        self._queue.put(None)
        self._thread.join(60)
        self._client.close()

    def _work(self) -> None:
        while True:
            message = self._queue.get()
            if message is None:
                return
            self.deliveries.append(self._deliver(message))
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def _deliver(self, message: _Message) -> Delivery:
        status: int | None = None
        delays = itertools.chain([0.0], self.retry_delays)
        attempts = 0
        for delay in delays:
            time.sleep(delay)
            attempts += 1
            try:
                response = self._client.post(
                    self.url, content=message.body, headers=self._headers(message)
                )
            except httpx.HTTPError:
                status = None
                continue
            status = response.status_code
            if self._accepted(response):
                return Delivery(message.message_id, True, status, attempts, message.created)
        return Delivery(message.message_id, False, status, attempts, message.created)


class StandardWebhookSender(_Sender):
    """Signed Standard Webhooks with the hub's generic change body."""

    def __init__(self, url: str, secret: str, *, event_type: str = "civicrm.change", **kw) -> None:
        self.webhook = Webhook(secret)
        self.event_type = event_type
        super().__init__(url, **kw)

    def _headers(self, message: _Message) -> dict[str, str]:
        now = datetime.now(UTC)  # a retry is signed afresh, with the same id
        return {
            "content-type": message.content_type,
            "webhook-id": message.message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.webhook.sign(message.message_id, now, message.body),
        }

    def send_json(self, body: dict) -> str:
        """Queue any JSON body; returns the message id (``webhook-id``)."""
        return self._enqueue(json.dumps(body, separators=(",", ":")).encode(), "application/json")

    def change(self, entity: str, action: str, ids: Iterable[object]) -> str:
        """Queue one change of ``entity`` records (``action``: create, update, delete...)."""
        return self.send_json(
            {
                "type": self.event_type,
                "changes": [{"entity": entity, "action": action, "ids": [str(i) for i in ids]}],
            }
        )


CDC_CHANGE_TYPES = {"create": "CREATE", "update": "UPDATE", "delete": "DELETE"}


class CdcRelay(StandardWebhookSender):
    """Salesforce Change Data Capture events relayed as signed Standard Webhooks."""

    def __init__(self, url: str, secret: str, **kw) -> None:
        super().__init__(url, secret, event_type="salesforce.cdc", **kw)
        self._replay = itertools.count(1)
        self._commit = itertools.count(100_000)

    def change(self, entity: str, action: str, ids: Iterable[object]) -> str:
        """One CDC event (``changeType`` from ``action``; GAP_/overflow types pass through)."""
        change_type = CDC_CHANGE_TYPES.get(action, action)
        commit = next(self._commit)
        header = {
            "entityName": entity,
            "recordIds": [str(i) for i in ids],
            "changeType": change_type,
            "changeOrigin": "com/salesforce/api/rest/62.0",
            "transactionKey": uuid.uuid4().hex,
            "sequenceNumber": 1,
            "commitTimestamp": int(time.time() * 1000),
            "commitNumber": commit,
            "commitUser": "005000000000001AAA",
            "changedFields": [],
        }
        schema = f"{entity}ChangeEvent"
        return self.send_json(
            {
                "schema": schema,
                "payload": {"ChangeEventHeader": header},
                "event": {"replayId": next(self._replay)},
            }
        )


def outbound_message(
    organization_id: str,
    sobject: str,
    record_ids: Sequence[str],
    *,
    action_id: str = "04k000000000001AAA",
    instance_url: str = "https://example.my.salesforce.com",
    notification_ids: Sequence[str] | None = None,
) -> bytes:
    """The SOAP envelope of one Outbound Message (``notifications``), up to 100 records.

    Each notification carries the record's ``Id`` only: the hub needs no field values, and
    the sandbox is configured to send none.
    """
    if not 1 <= len(record_ids) <= 100:
        raise ValueError("an Outbound Message carries 1 to 100 notifications")
    ids = list(notification_ids or [f"04l{n:015d}" for n in range(1, len(record_ids) + 1)])
    notes = "".join(
        f"<Notification><Id>{escape(nid)}</Id>"
        f'<sObject xsi:type="sf:{escape(sobject)}" '
        'xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        f"<sf:Id>{escape(rid)}</sf:Id></sObject></Notification>"
        for nid, rid in zip(ids, record_ids, strict=True)
    )
    org = escape(organization_id)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_NS}" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body>"
        f'<notifications xmlns="{OUTBOUND_NS}">'
        f"<OrganizationId>{org}</OrganizationId>"
        f"<ActionId>{escape(action_id)}</ActionId>"
        '<SessionId xsi:nil="true"/>'
        f"<EnterpriseUrl>{escape(instance_url)}/services/Soap/c/62.0/{org}</EnterpriseUrl>"
        f"<PartnerUrl>{escape(instance_url)}/services/Soap/u/62.0/{org}</PartnerUrl>"
        f"{notes}"
        "</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def is_ack(body: bytes) -> bool:
    """Whether a listener's answer is the documented ``notificationsResponse`` with
    ``<Ack>true</Ack>`` (anything else, Salesforce sends the message again)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return False
    ack = root.find(f".//{{{OUTBOUND_NS}}}notificationsResponse/{{{OUTBOUND_NS}}}Ack")
    return ack is not None and (ack.text or "").strip().lower() == "true"


class OutboundMessageSender(_Sender):
    """Salesforce Outbound Messages: SOAP over HTTP, acknowledged with ``<Ack>true</Ack>``."""

    def __init__(
        self,
        url: str,
        organization_id: str,
        *,
        instance_url: str = "https://example.my.salesforce.com",
        **kw,
    ) -> None:
        self.organization_id = organization_id
        self.instance_url = instance_url
        super().__init__(url, **kw)

    def _headers(self, message: _Message) -> dict[str, str]:
        return {"content-type": message.content_type, "soapaction": '""'}

    def _accepted(self, response: httpx.Response) -> bool:
        return 200 <= response.status_code < 300 and is_ack(response.content)

    def change(self, entity: str, action: str, ids: Iterable[object]) -> str:
        """One message for records of ``entity`` (a workflow rule fires on create and edit;
        Outbound Messages know no deletes, so a delete sends nothing and returns '')."""
        if action == "delete":
            return ""
        record_ids = [str(i) for i in ids][:100]
        body = outbound_message(
            self.organization_id,
            entity,
            record_ids,
            instance_url=self.instance_url,
            # Unique across restarts: listeners drop a notification id they have seen.
            notification_ids=[f"04l{secrets.token_hex(6).upper()}" for _ in record_ids],
        )
        return self._enqueue(body, "text/xml; charset=utf-8")
