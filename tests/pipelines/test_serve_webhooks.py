"""The demo's CRM sandboxes tell the hub of a change, over real loopback HTTP: CiviCRM with
a signed Standard Webhook, Salesforce with an Outbound Message or a CDC event through a
relay; a delivery that is not accepted is retried, as the real senders do."""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from sandboxes.civicrm import CiviCRMSandbox
from sandboxes.salesforce_npsp import SalesforceSandbox
from sandboxes.webhooks import (
    OUTBOUND_NS,
    CdcRelay,
    OutboundMessageSender,
    StandardWebhookSender,
    new_webhook_secret,
)

FAST = (0.05, 0.05, 0.05, 0.05)
ACK = (
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    f'<soapenv:Body><notificationsResponse xmlns="{OUTBOUND_NS}"><Ack>true</Ack>'
    "</notificationsResponse></soapenv:Body></soapenv:Envelope>"
)


class Listener:
    """A loopback endpoint that records each request and answers from a script."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.answers: list[tuple[int, str]] = []  # popped per request; then 204
        self.lock = threading.Lock()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with listener.lock:
                    listener.requests.append(
                        (self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    status, text = listener.answers.pop(0) if listener.answers else (204, "")
                payload = text.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.server.shutdown()
    server.server.server_close()


def _civi_api(civi: CiviCRMSandbox, entity: str, action: str, params: dict) -> httpx.Response:
    return httpx.post(
        f"{civi.url}/civicrm/ajax/api4/{entity}/{action}",
        data={"params": json.dumps(params)},
        headers={"X-Civi-Auth": f"Bearer {civi.api_key}", "X-Requested-With": "XMLHttpRequest"},
    )


def test_civicrm_sends_a_signed_standard_webhook_and_retries_until_accepted(
    listener: Listener,
) -> None:
    secret = new_webhook_secret()
    sender = StandardWebhookSender(f"{listener.url}/members/harbour/webhook", secret)
    sender.retry_delays = FAST
    listener.answers = [(500, "busy"), (503, "busy")]  # accepted on the third attempt
    with CiviCRMSandbox(contacts=3) as civi:
        civi.notifier = sender.change
        answer = _civi_api(
            civi, "Contact", "update", {"where": [["id", "=", 2]], "values": {"last_name": "Q"}}
        )
        assert answer.status_code == 200 and answer.json()["values"][0]["last_name"] == "Q"
        assert sender.wait_idle(10)
    assert [d.delivered for d in sender.deliveries] == [True]
    assert sender.deliveries[0].attempts == 3
    assert len(listener.requests) == 3
    path, _, body = listener.requests[-1]
    assert path == "/members/harbour/webhook"
    assert json.loads(body) == {
        "type": "civicrm.change",
        "changes": [{"entity": "Contact", "action": "update", "ids": ["2"]}],
    }
    # Every attempt verifies with the member's secret, under one webhook-id.
    assert len({h["webhook-id"] for _, h, _ in listener.requests}) == 1
    for _, attempt_headers, attempt_body in listener.requests:
        Webhook(secret).verify(attempt_body, attempt_headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(new_webhook_secret()).verify(attempt_body, attempt_headers)
    sender.close()


def test_civicrm_create_and_delete_through_the_api_are_sent_and_a_lost_one_is_given_up(
    listener: Listener,
) -> None:
    sender = StandardWebhookSender(listener.url, new_webhook_secret(), retry_delays=FAST)
    with CiviCRMSandbox(contacts=3) as civi:
        civi.notifier = sender.change
        created = _civi_api(civi, "Contact", "create", {"values": {"last_name": "New"}})
        new_id = created.json()["values"][0]["id"]
        assert sender.wait_idle(10)  # delivered before the listener starts failing
        listener.answers = [(500, "")] * 5  # the delete's five attempts all fail
        _civi_api(civi, "Activity", "delete", {"where": [["id", "=", 1]]})
        assert sender.wait_idle(10)
    bodies = [json.loads(body)["changes"][0] for _, _, body in listener.requests]
    assert bodies[0] == {"entity": "Contact", "action": "create", "ids": [str(new_id)]}
    assert bodies[-1] == {"entity": "Activity", "action": "delete", "ids": ["1"]}
    assert [(d.delivered, d.attempts, d.status) for d in sender.deliveries] == [
        (True, 1, 204),
        (False, 5, 500),
    ]
    sender.close()


def _salesforce_edit(sf: SalesforceSandbox, record_id: str, changes: dict) -> int:
    token = httpx.post(
        f"{sf.url}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": sf.client_id,
            "client_secret": sf.client_secret,
        },
    ).json()["access_token"]
    answer = httpx.patch(
        f"{sf.url}/services/data/v62.0/sobjects/Contact/{record_id}",
        json=changes,
        headers={"Authorization": f"Bearer {token}"},
    )
    return answer.status_code


def test_salesforce_sends_an_outbound_message_until_acknowledged(listener: Listener) -> None:
    org_id = "00D5g000004TESTEAA"
    sender = OutboundMessageSender(
        f"{listener.url}/members/southbank/salesforce/outbound/tok", org_id, retry_delays=FAST
    )
    # A 200 without the Ack envelope is not an acknowledgement: Salesforce sends it again.
    listener.answers = [(200, "<ok/>"), (200, ACK)]
    with SalesforceSandbox(organization_id=org_id) as sf:
        sf.notifier = sender.change
        contact = sf.ids("Contact")[0]
        assert _salesforce_edit(sf, contact, {"LastName": "Quell"}) == 204
        assert sf.record("Contact", contact)["LastName"] == "Quell"
        assert _salesforce_edit(sf, contact, {"Id": "x"}) == 400  # not updateable: no message
        assert sender.wait_idle(10)
    assert [(d.delivered, d.attempts) for d in sender.deliveries] == [(True, 2)]
    path, headers, body = listener.requests[-1]
    assert path == "/members/southbank/salesforce/outbound/tok"
    assert headers["content-type"].startswith("text/xml") and headers["soapaction"] == '""'
    ns = {"o": OUTBOUND_NS, "sf": "urn:sobject.enterprise.soap.sforce.com"}
    root = ET.fromstring(body)
    notifications = root.find(".//o:notifications", ns)
    assert notifications is not None
    assert notifications.findtext("o:OrganizationId", namespaces=ns) == org_id
    assert notifications.findtext("o:ActionId", namespaces=ns)
    notes = notifications.findall("o:Notification", ns)
    assert [n.findtext("o:sObject/sf:Id", namespaces=ns) for n in notes] == [contact]
    sender.close()


def test_salesforce_changes_relayed_as_cdc_events(listener: Listener) -> None:
    secret = new_webhook_secret()
    relay = CdcRelay(f"{listener.url}/members/southbank/webhook", secret, retry_delays=FAST)
    with SalesforceSandbox() as sf:
        sf.notifier = relay.change
        contacts = sf.ids("Contact")[:2]
        sf.update_records("Contact", contacts, {"LastName": "Quell"})
        sf.delete_records("Contact", contacts[:1])
        assert relay.wait_idle(10)
    events = []
    for _, headers, body in listener.requests:
        Webhook(secret).verify(body, headers)
        events.append(json.loads(body)["payload"]["ChangeEventHeader"])
    assert [(e["entityName"], e["changeType"], e["recordIds"]) for e in events] == [
        ("Contact", "UPDATE", contacts),
        ("Contact", "DELETE", contacts[:1]),
    ]
    assert all(e["commitTimestamp"] > 0 and e["transactionKey"] for e in events)
    relay.close()
