"""A Salesforce load that stops early is a held member, not a success (issue #19 item 7).

In-process ``dg.materialize`` of the raw asset and the canonical mapping against the loopback
sandbox: the cheap way to see what `hub run` would make of a load.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sandboxes.salesforce_npsp import SalesforceSandbox, SandboxSizes
from tests.pipelines.member_assets import MemberAssets
from tests.pipelines.test_cli_check import _check, _member, _render

ALL_OBJECTS = (
    "Account",
    "Contact",
    "pmdm__Program__c",
    "pmdm__Service__c",
    "pmdm__ProgramEngagement__c",
    "pmdm__ServiceDelivery__c",
    "Opportunity",
    "npe03__Recurring_Donation__c",
    "Outcome__c",
)
SIZES = SandboxSizes(
    contacts=24, programs=2, engagements=20, deliveries=30, opportunities=4, outcomes=6
)


def test_a_load_stopped_by_the_api_allocation_holds_the_member_until_it_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The allocation runs out part-way through the first load: what was read is kept, but
    the member is held back (no mapping, `hub check` and the summary say why). The next run
    carries on and the member is current; the summary counts only people who still exist."""
    from pipelines.defs.ingest.salesforce import salesforce_raw
    from pipelines.defs.transform.canonical import canonical_model
    from pipelines.lib.summary import render_summary

    org = "sf_trust"
    with SalesforceSandbox(sizes=SIZES, page_size=5, api_max=100) as sf:
        _member(
            tmp_path,
            org,
            {
                "kind": "salesforce_npsp",
                "login_url": sf.url,
                "client_id": sf.client_id,
                "client_secret": {"env": "HUB_SF_TRUST_SECRET"},
            },
        )
        monkeypatch.setenv("HUB_SF_TRUST_SECRET", sf.client_secret)
        monkeypatch.setenv("HUB_MEMBERS_DIR", str(tmp_path))
        monkeypatch.setenv("HUB_HOME", str(tmp_path / ".hub"))
        hub = MemberAssets(org)
        run, query, status, settings = hub.run, hub.query, hub.status, hub.settings

        # Room for the first object and part of the next: reserve 10% of 100 requests.
        sf.set_api_usage(75, 100)
        assert not run(salesforce_raw, canonical_model)
        tables = query(
            "SELECT table_name FROM information_schema.tables "
            f"WHERE table_schema = 'raw_{org}' AND table_name NOT LIKE '_dlt%'"
        )
        loaded = sum(query(f"SELECT COUNT(*) FROM raw_{org}.{t}")[0][0] for (t,) in tables)
        total = sum(len(sf.ids(o)) for o in ALL_OBJECTS)
        assert 0 < loaded < total  # what was read is kept...
        held = status()
        assert held.held_back and held.stage == "load"  # ...but the member is held back
        assert "daily API allocation" in held.reason and "carries on" in held.reason
        assert not run(canonical_model)  # no mapping takes a held load
        code, out = _check(org, tmp_path, monkeypatch)
        assert code == 1 and "The last load is held, not taken" in out, out
        summary = " ".join(_render(render_summary([], settings)).split())
        assert f"! {org}: last good load never" in summary and "held, not taken" in summary

        sf.set_api_usage(0, 15000)
        assert run(salesforce_raw, canonical_model)
        assert status().status == "current"
        people = len(sf.ids("Contact"))
        assert query("SELECT COUNT(*) FROM canonical.person") == [(people,)]

        # Deleted once loaded: canonical keeps them as deleted rows, the summary as nobody.
        # (Stamped a few seconds back: a run reads up to the start of its own second.)
        recently = datetime.now(UTC) - timedelta(seconds=5)
        sf.delete_records("Contact", sf.ids("Contact")[:2], at=recently)
        assert run(salesforce_raw, canonical_model)
        assert query("SELECT COUNT(*), COUNT(*) FILTER (is_deleted) FROM canonical.person") == [
            (people, 2)
        ]
    summary = " ".join(_render(render_summary([], settings)).split())
    assert f"{org}: {people - 2} people," in summary  # deleted contacts are nobody
