"""A Salesforce member through `hub run`: raw data loads over real HTTP, then only changes.

The sandbox runs in this process; `hub run` runs in a fresh one, as an operator runs
it, and reaches the sandbox over loopback.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import yaml

from sandboxes.salesforce_npsp import SalesforceSandbox
from tests.pipelines.hub_cli import hub, hub_env

pytestmark = pytest.mark.slow


def _rows(home: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_salesforce_member_loads_raw_data_and_then_only_changes(tmp_path: Path) -> None:
    members, home = tmp_path / "members", tmp_path / "hub"
    members.mkdir()
    with SalesforceSandbox() as sf:
        (members / "acme_trust.yaml").write_text(
            yaml.safe_dump(
                {
                    "name": "Acme Trust",
                    "connector": {
                        "kind": "salesforce_npsp",
                        "login_url": sf.url,
                        "client_id": sf.client_id,
                        "client_secret": {"env": "HUB_ACME_TRUST_SF_SECRET"},
                    },
                }
            ),
            encoding="utf-8",
        )
        env = hub_env(tmp_path, members, HUB_ACME_TRUST_SF_SECRET=sf.client_secret)
        first = hub(["run"], env)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "✓ load acme_trust" in first.stdout
        contacts = sf.ids("Contact")
        loaded = _rows(home, "SELECT id FROM raw_acme_trust.npsp__contact ORDER BY id")
        assert [r[0] for r in loaded] == sorted(contacts)
        deliveries = _rows(home, "SELECT COUNT(*) FROM raw_acme_trust.pmdm__service_delivery")
        assert deliveries[0][0] == len(sf.ids("pmdm__ServiceDelivery__c"))
        gone = sorted(contacts)[0]
        sf.delete_records("Contact", [gone])
        second = hub(["run"], env)
        assert second.returncode == 0, second.stdout + second.stderr
        after = _rows(home, "SELECT id, is_deleted FROM raw_acme_trust.npsp__contact ORDER BY id")
        assert len(after) == len(contacts)  # merged on Id: the deletion updates, never duplicates
        assert dict(after)[gone] is True
        env["HUB_ACME_TRUST_SF_SECRET"] = "wrong-secret"
        refused = hub(["run"], env)
        assert refused.returncode == 1 and "✗ load acme_trust" in refused.stdout
        assert "wrong-secret" not in refused.stdout + refused.stderr
