"""Smoke form of the Salesforce speed benchmark (the benchmark itself never runs in the suite).

The fast server must keep serving what the connector's client and the bare loops ask for, or
the benchmark's figures would silently stop meaning anything: 30 records, REST pages of 7,
Bulk result sets of 11, both bare loops and the connector's own REST and Bulk readers.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.salesforce_speed import child
from benchmarks.sf_fast_server import FastSalesforce, prerender
from connectors.salesforce_npsp.client import SalesforceClient
from connectors.salesforce_npsp.settings import ClientCredentials, SalesforceSettings


def test_fast_server_serves_the_bare_loops_and_the_client(tmp_path: Path) -> None:
    rendered = prerender(30, page_size=7, result_set=11)
    assert len(rendered.query_pages) == 5 and len(rendered.result_sets) == 3
    sleeps: list[float] = []
    with FastSalesforce(rendered, job_seconds=0) as server:
        assert child("bare-rest", server.url, tmp_path)["rows"] == 30
        assert child("bare-bulk", server.url, tmp_path)["rows"] == 30
        settings = SalesforceSettings(login_url=server.url, client_id="bench")
        with SalesforceClient(settings, ClientCredentials("s"), sleep=sleeps.append) as client:
            rest = [r["Id"] for page in client.query_pages("SELECT Id FROM X") for r in page]
            job = client.bulk_job("SELECT Id FROM X")
            bulk = [i for t in client.bulk_pages(job, {}) for i in t.column("Id").to_pylist()]
    assert len(rest) == 30 and sorted(bulk) == sorted(rest)
    assert sleeps == []  # the job was complete at the first poll
