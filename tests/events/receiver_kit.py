"""Shared by the receiver tests and its benchmark: member files with an ``events:`` section,
signed Standard Webhooks, Outbound Messages, and a receiver served on a loopback port."""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import uvicorn
import yaml
from standardwebhooks import Webhook

from sandboxes.salesforce_npsp import make_id

SF_ORG_ID = make_id("00D", 4242)  # 18 characters, the real checksum suffix
OTHER_SF_ORG_ID = make_id("00D", 9999)
OM_TOKEN = "om-token-0123456789abcdef"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def write_member(
    folder: Path, org: str, kind: str = "salesforce_npsp", events: dict | None = None
) -> Path:
    """A minimal valid member file of ``kind`` with ``events``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "salesforce_npsp":
        connector: dict[str, Any] = {
            "kind": "salesforce_npsp",
            "login_url": "http://127.0.0.1:9",
            "client_id": "key",
            "client_secret": {"env": f"HUB_{org.upper()}_SF_SECRET"},
        }
    else:
        connector = {
            "kind": "civicrm",
            "site_url": "http://127.0.0.1:9",
            "api_key": {"env": f"HUB_{org.upper()}_CIVI_KEY"},
        }
    config: dict[str, Any] = {
        "name": org.title(),
        "connector": connector,
        "sharing": {"consent": "none"},
    }
    if events is not None:
        config["events"] = events
    path = folder / f"{org}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def signed_headers(
    secret: str, body: bytes, event_id: str, at: float | None = None
) -> dict[str, str]:
    """Standard Webhooks headers for ``body``, signed by the package itself."""
    when = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    signature = Webhook(secret).sign(event_id, when, body)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


def cdc_body(
    entity: str = "Contact", change: str = "UPDATE", ids: list[str] | None = None
) -> bytes:
    """A Salesforce CDC event as a relay forwards it (wrapped in ``payload``)."""
    return orjson.dumps(
        {
            "schema": "synthetic",
            "payload": {
                "ChangeEventHeader": {
                    "entityName": entity,
                    "changeType": change,
                    "recordIds": ids if ids is not None else [make_id("003", 1)],
                    "commitTimestamp": int(time.time() * 1000),
                    "transactionKey": "0001-synthetic",
                    "sequenceNumber": 1,
                    "changeOrigin": "",
                    "commitUser": make_id("005", 1),
                    "commitNumber": 1,
                },
                "LastName": "Example",
            },
        }
    )


def outbound_message(notifications: list[tuple[str, str, str]], org_id: str = SF_ORG_ID) -> bytes:
    """A Salesforce Outbound Message: ``(notification id, sObject type, record id)`` each."""
    parts = "".join(
        f"<Notification><Id>{nid}</Id>"
        f'<sObject xsi:type="sf:{kind}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        f"<sf:Id>{rid}</sf:Id><sf:LastName>Example</sf:LastName></sObject></Notification>"
        for nid, kind, rid in notifications
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body>"
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org_id}</OrganizationId>"
        f"<ActionId>{make_id('04k', 1)}</ActionId>"
        '<SessionId xsi:nil="true"/>'
        "<EnterpriseUrl>https://example.invalid/services/Soap/c/62.0</EnterpriseUrl>"
        "<PartnerUrl>https://example.invalid/services/Soap/u/62.0</PartnerUrl>"
        f"{parts}</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the receiver did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
