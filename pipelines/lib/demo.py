"""The local CRM sandboxes the demo's CRM members talk to.

The demo's Salesforce member (``members/southbank_advice.yaml``) and CiviCRM member
(``members/harbour_wellbeing.yaml``) point at loopback sites on fixed ports;
``demo_sandboxes`` serves them from the bundled records for as long as the demo runs, and
puts each sandbox's (non-secret) credential in the environment variable the member's file
names. Members that are not in the registry, or whose file points elsewhere, are left alone.

Given the receiver's address (``hub serve``), each sandbox also tells the hub when one of its
records changes, as the real CRM would once pointed at the receiver: the CiviCRM site sends
a signed Standard Webhook with the hub's change body, the Salesforce org an Outbound Message
(or, with ``salesforce_sends="cdc"``, a Change Data Capture event through a relay, signed
the same way). The secrets they use are the ones the demo members' ``events:`` sections
name, made up afresh for each run and put in the environment (``demo_event_secrets``)
unless already set.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from connectors.members import CiviCRMConnector, Member, SalesforceConnector

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class DemoOrg:
    """One demo member served by a sandbox."""

    org_id: str
    port: int
    data_file: Path  # the records the sandbox serves
    secret_env: str
    webhook_secret_env: str  # the member's events.webhook_secret (Standard Webhooks)


SALESFORCE_DEMO = DemoOrg(
    "southbank_advice",
    18443,
    REPO_ROOT / "sample_data" / "southbank_advice" / "salesforce_org.json",
    "HUB_SOUTHBANK_ADVICE_SF_SECRET",
    "HUB_SOUTHBANK_ADVICE_WEBHOOK_SECRET",
)
SALESFORCE_OM_TOKEN_ENV = "HUB_SOUTHBANK_ADVICE_OM_TOKEN"
SALESFORCE_ORG_ID = "00D5g000004DEMOEA4"
"""The demo org's id: its Outbound Messages carry it, and the member's
``events.organization_id`` must match it."""
CIVICRM_DEMO = DemoOrg(
    "harbour_wellbeing",
    18444,
    REPO_ROOT / "sample_data" / "harbour_wellbeing" / "civicrm_site.json",
    "HUB_HARBOUR_WELLBEING_CIVI_KEY",
    "HUB_HARBOUR_WELLBEING_WEBHOOK_SECRET",
)


def demo_event_secrets() -> dict[str, str]:
    """Set (unless already set) and return the demo members' event secrets: a Standard
    Webhooks secret for each CRM member and the Salesforce Outbound Message path token.

    Made up per run: they protect a loopback demo, and a fixed value in the repository would
    be a secret anyone could read.
    """
    import secrets

    from sandboxes.webhooks import new_webhook_secret

    wanted = {
        SALESFORCE_DEMO.webhook_secret_env: new_webhook_secret(),
        CIVICRM_DEMO.webhook_secret_env: new_webhook_secret(),
        SALESFORCE_OM_TOKEN_ENV: secrets.token_urlsafe(24),
    }
    for name, value in wanted.items():
        os.environ.setdefault(name, value)
    return {name: os.environ[name] for name in wanted}


class SandboxPortBusy(RuntimeError):
    """The demo's fixed sandbox port is taken (another demo or test is running)."""


def _check_port(port: int, org_id: str) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as err:
            raise SandboxPortBusy(
                f"port {port} on 127.0.0.1 is in use, so the sandbox for {org_id} cannot "
                "start: stop the other demo (or whatever holds the port) and run again"
            ) from err


def _senders(receiver_url: str, salesforce_sends: str) -> dict[str, Any]:
    """Per demo member, what its sandbox sends a change to (secrets from the environment)."""
    from sandboxes.webhooks import CdcRelay, OutboundMessageSender, StandardWebhookSender

    base = receiver_url.rstrip("/")
    secrets = demo_event_secrets()
    civi = CIVICRM_DEMO.org_id
    sf = SALESFORCE_DEMO.org_id
    senders: dict[str, Any] = {
        civi: StandardWebhookSender(
            f"{base}/members/{civi}/webhook", secrets[CIVICRM_DEMO.webhook_secret_env]
        )
    }
    if salesforce_sends == "cdc":
        senders[sf] = CdcRelay(
            f"{base}/members/{sf}/webhook", secrets[SALESFORCE_DEMO.webhook_secret_env]
        )
    else:
        token = secrets[SALESFORCE_OM_TOKEN_ENV]
        senders[sf] = OutboundMessageSender(
            f"{base}/members/{sf}/salesforce/outbound/{token}", SALESFORCE_ORG_ID
        )
    return senders


@contextmanager
def demo_sandboxes(
    members: dict[str, Member],
    *,
    receiver_url: str | None = None,
    salesforce_sends: Literal["outbound_message", "cdc"] = "outbound_message",
) -> Iterator[list[str]]:
    """Serve the sandboxes the configured demo members need; yield their org ids.

    With ``receiver_url``, each sandbox sends its changes to the hub's receiver there.
    """
    from sandboxes.civicrm import CiviCRMSandbox
    from sandboxes.salesforce_npsp import SalesforceSandbox

    started: list[str] = []
    senders = _senders(receiver_url, salesforce_sends) if receiver_url else {}
    with ExitStack() as stack:
        for sender in senders.values():
            stack.callback(sender.close)
        demo = SALESFORCE_DEMO
        member = members.get(demo.org_id)
        if (
            member is not None
            and isinstance(member.connector, SalesforceConnector)
            and member.connector.login_url.rstrip("/") == f"http://127.0.0.1:{demo.port}"
        ):
            _check_port(demo.port, demo.org_id)
            sandbox = stack.enter_context(
                SalesforceSandbox(
                    org_file=demo.data_file,
                    port=demo.port,
                    client_id=member.connector.client_id,
                    organization_id=SALESFORCE_ORG_ID,
                )
            )
            if demo.org_id in senders:
                sandbox.notifier = senders[demo.org_id].change
            os.environ.setdefault(demo.secret_env, sandbox.client_secret)
            started.append(demo.org_id)
        demo = CIVICRM_DEMO
        member = members.get(demo.org_id)
        if (
            member is not None
            and isinstance(member.connector, CiviCRMConnector)
            and member.connector.site_url.rstrip("/") == f"http://127.0.0.1:{demo.port}"
        ):
            _check_port(demo.port, demo.org_id)
            civi = stack.enter_context(CiviCRMSandbox(site_file=demo.data_file, port=demo.port))
            if demo.org_id in senders:
                civi.notifier = senders[demo.org_id].change
            os.environ.setdefault(demo.secret_env, civi.api_key)
            started.append(demo.org_id)
        yield started
