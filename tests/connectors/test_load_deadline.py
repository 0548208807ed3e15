"""A member's whole CRM load has a deadline; validation errors are not retried (issue #18, 4).

The loopback sandboxes answer every request a second late: each answer is well inside the
per-request deadline, so only the load's overall deadline (``load_deadline``) can stop a
load of many pages. The load must then fail in about that time, with an error that names
the member and the setting, and that is not retried.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import dlt
import httpx
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed
from pydantic import ValidationError

from connectors.civicrm.client import CiviCRMClient, CiviCRMError
from connectors.civicrm.settings import CiviCRMSettings
from connectors.civicrm.source import civicrm_source
from connectors.civicrm.source import raw_pipeline as civicrm_pipeline
from connectors.deadline import LoadDeadline, LoadDeadlineExceeded
from connectors.errors import PermanentSourceError
from connectors.salesforce_npsp.client import SalesforceApiError, SalesforceClient
from connectors.salesforce_npsp.settings import ClientCredentials, SalesforceSettings
from connectors.salesforce_npsp.source import load_npsp
from connectors.salesforce_npsp.source import raw_pipeline as npsp_pipeline
from pipelines.lib.errors import as_failure
from sandboxes.civicrm import CiviCRMSandbox
from sandboxes.salesforce_npsp import SalesforceSandbox, SandboxSizes

MESSAGE = "did not finish within load_deadline = 3 s; raise connector.load_deadline"


def _cause(err: BaseException, kind: type[BaseException]) -> BaseException | None:
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


# ----------------------------------------------------------------------------- the object


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_load_deadline_cuts_requests_and_sleeps_and_names_the_member() -> None:
    clock = FakeClock()
    load = LoadDeadline(10, "north_aid", clock=clock)
    clock.now += 50  # the clock starts at the first request, not when the source is built
    assert load.request_seconds(120) == 10  # the request gets what is left of the load
    clock.now += 4
    assert load.request_seconds(3) == 3  # or its own deadline, whichever ends first
    slept: list[float] = []
    load.pause(2, slept.append)
    assert slept == [2]
    with pytest.raises(LoadDeadlineExceeded) as err:
        load.pause(7, slept.append)  # would end past the deadline: fail now, do not sleep
    assert slept == [2]
    assert str(err.value).startswith(
        "the load of north_aid did not finish within load_deadline = 10 s; raise "
        "connector.load_deadline in members/north_aid.yaml or check the server"
    )
    clock.now += 6
    with pytest.raises(LoadDeadlineExceeded):
        load.request_seconds(120)
    assert isinstance(err.value, PermanentSourceError)  # never retried
    failure = as_failure(err.value)
    assert getattr(failure, "allow_retries", True) is False


@pytest.mark.parametrize("value", [0, -5])
def test_load_deadline_setting_must_be_positive(value: float) -> None:
    with pytest.raises(ValidationError, match="load_deadline"):
        CiviCRMSettings(site_url="https://crm.example.org", load_deadline=value)
    with pytest.raises(ValidationError, match="load_deadline"):
        SalesforceSettings(
            login_url="https://login.salesforce.com", client_id="x", load_deadline=value
        )
    assert CiviCRMSettings(site_url="https://crm.example.org").load_deadline == 7200
    assert (
        SalesforceSettings(login_url="https://login.salesforce.com", client_id="x").load_deadline
        == 7200
    )


# ----------------------------------------------------------------------------- whole loads


def test_a_civicrm_load_answered_slowly_stops_at_its_load_deadline(tmp_path: Path) -> None:
    """30 contacts a page each, every answer a second late but inside its own 5 s deadline:
    without the load deadline this load would take over a minute."""
    with CiviCRMSandbox(contacts=30, activities_per_contact=0) as civi:
        settings = CiviCRMSettings(
            site_url=civi.url,
            url_style=civi.url_style,
            page_size=1,
            request_deadline=5,
            load_deadline=3,
            backoff_seconds=0,
            entities=("contact",),
        )
        pipeline = civicrm_pipeline(
            "bridge_centre", dlt.destinations.duckdb(str(tmp_path / "w.duckdb")), tmp_path / "p"
        )
        civi.slow_down(1.0)
        started = time.monotonic()
        with pytest.raises(PipelineStepFailed) as err:
            pipeline.run(civicrm_source(settings, civi.api_key, member="bridge_centre"))
        elapsed = time.monotonic() - started
        calls, url = len(civi.requests), civi.url
    cause = _cause(err.value, LoadDeadlineExceeded)
    assert cause is not None, err.value
    assert str(cause).startswith(f"the load of bridge_centre {MESSAGE} in members/bridge_centre")
    assert civi.api_key not in str(cause) and url not in str(cause)
    assert 2.5 < elapsed < 10, elapsed
    assert calls <= 5  # stopped, not retried


def test_a_salesforce_load_answered_slowly_stops_at_its_load_deadline(tmp_path: Path) -> None:
    sizes = SandboxSizes(contacts=40, programs=1, services_per_program=1, engagements=5)
    with SalesforceSandbox(sizes=sizes, page_size=2) as sf:
        settings = SalesforceSettings(
            login_url=sf.url,
            client_id=sf.client_id,
            request_deadline=5,
            load_deadline=3,
            backoff_seconds=0,
            page_size=200,
            objects=("npsp__contact",),
        )
        pipeline = npsp_pipeline(
            "southbank", dlt.destinations.duckdb(str(tmp_path / "w.duckdb")), tmp_path / "p"
        )
        sf.slow_down(1.0)
        started = time.monotonic()
        with pytest.raises(LoadDeadlineExceeded) as err:
            load_npsp(pipeline, settings, ClientCredentials(sf.client_secret), member="southbank")
        elapsed = time.monotonic() - started
    assert str(err.value).startswith(f"the load of southbank {MESSAGE} in members/southbank.yaml")
    assert sf.client_secret not in str(err.value)
    assert 2.5 < elapsed < 10, elapsed


def test_backoff_never_sleeps_past_the_load_deadline() -> None:
    """A CRM failing every request with 5xx and long backoffs: the load ends at its deadline
    instead of sleeping through minutes of retries first."""
    with CiviCRMSandbox(contacts=2) as civi:
        civi.fail_next(20, 500)
        settings = CiviCRMSettings(
            site_url=civi.url, backoff_seconds=30, max_retries=6, load_deadline=3
        )
        slept: list[float] = []
        client = CiviCRMClient(
            settings, civi.api_key, sleep=slept.append, load_deadline=LoadDeadline(3, "x")
        )
        with client, pytest.raises(LoadDeadlineExceeded):
            client.get("Contact", {"limit": 1})
    assert slept == []


def test_salesforce_backoff_never_sleeps_past_the_load_deadline() -> None:
    with SalesforceSandbox(sizes=SandboxSizes(contacts=3), page_size=2) as sf:
        settings = SalesforceSettings(
            login_url=sf.url, client_id=sf.client_id, backoff_seconds=30, backoff_max_seconds=60
        )
        slept: list[float] = []
        with SalesforceClient(
            settings,
            ClientCredentials(sf.client_secret),
            sleep=slept.append,
            load_deadline=LoadDeadline(3, "x"),
        ) as client:
            client.sobject_names()  # logged in
            sf.fail_next(20, 503)
            with pytest.raises(LoadDeadlineExceeded):
                client.limits()
    assert slept == []


# ----------------------------------------------------------------------------- 4xx


class Recorder:
    """An httpx transport answering every request with one status, counting requests."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        if request.url.path == "/services/oauth2/token":
            token = {"access_token": "t", "instance_url": "https://sf.example", "id": "x"}
            return httpx.Response(200, json=token)
        return httpx.Response(
            self.status,
            content=json.dumps(self.body).encode(),
            headers={"Content-Type": "application/json"},
        )


@pytest.mark.parametrize("status", [400, 405, 409, 413, 422])
def test_civicrm_validation_errors_are_not_retried(status: int) -> None:
    recorder = Recorder(status, {"error_message": "Mandatory values missing", "is_error": 1})
    settings = CiviCRMSettings(site_url="https://crm.example.org", max_retries=4)
    slept: list[float] = []
    with (
        CiviCRMClient(
            settings, "k", transport=httpx.MockTransport(recorder), sleep=slept.append
        ) as client,
        pytest.raises(CiviCRMError) as err,
    ):
        client.call("Contact", "create", {"values": {}})
    assert err.value.status == status
    assert len(recorder.paths) == 1 and slept == []


@pytest.mark.parametrize("status", [400, 404, 405, 409, 422])
def test_salesforce_validation_errors_are_not_retried(status: int) -> None:
    recorder = Recorder(status, [{"errorCode": "MALFORMED_QUERY", "message": "unexpected token"}])
    settings = SalesforceSettings(
        login_url="https://login.salesforce.com", client_id="x", max_retries=4
    )
    slept: list[float] = []
    http = httpx.Client(transport=httpx.MockTransport(recorder))
    with (
        SalesforceClient(settings, ClientCredentials("s"), sleep=slept.append, http=http) as client,
        pytest.raises(SalesforceApiError) as err,
    ):
        client.get_json("/query", params={"q": "SELECT FROM"})
    assert err.value.status == status
    api_calls = [p for p in recorder.paths if not p.startswith("/services/oauth2")]
    assert len(api_calls) == 1 and slept == []
