"""The local CRM sandboxes the demo's CRM members talk to.

The demo's Salesforce member (``members/southbank_advice.yaml``) and CiviCRM member
(``members/harbour_wellbeing.yaml``) point at loopback sites on fixed ports;
``demo_sandboxes`` serves them from the bundled records for as long as the demo runs, and
puts each sandbox's (non-secret) credential in the environment variable the member's file
names. Members that are not in the registry, or whose file points elsewhere, are left alone.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from connectors.members import CiviCRMConnector, Member, SalesforceConnector

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class DemoOrg:
    """One demo member served by a sandbox."""

    org_id: str
    port: int
    data_file: Path  # the records the sandbox serves
    secret_env: str


SALESFORCE_DEMO = DemoOrg(
    "southbank_advice",
    18443,
    REPO_ROOT / "sample_data" / "southbank_advice" / "salesforce_org.json",
    "HUB_SOUTHBANK_ADVICE_SF_SECRET",
)
CIVICRM_DEMO = DemoOrg(
    "harbour_wellbeing",
    18444,
    REPO_ROOT / "sample_data" / "harbour_wellbeing" / "civicrm_site.json",
    "HUB_HARBOUR_WELLBEING_CIVI_KEY",
)


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


@contextmanager
def demo_sandboxes(members: dict[str, Member]) -> Iterator[list[str]]:
    """Serve the sandboxes the configured demo members need; yield their org ids."""
    from sandboxes.civicrm import CiviCRMSandbox
    from sandboxes.salesforce_npsp import SalesforceSandbox

    started: list[str] = []
    with ExitStack() as stack:
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
                    org_file=demo.data_file, port=demo.port, client_id=member.connector.client_id
                )
            )
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
            os.environ.setdefault(demo.secret_env, civi.api_key)
            started.append(demo.org_id)
        yield started
