"""A Salesforce member through `hub run`: raw data loads over real HTTP, then only changes.

The sandbox runs in this process; `hub run` runs in a fresh one (member partitions are read
when definitions load) and reaches the sandbox over loopback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

from connectors.salesforce_npsp.sandbox import SalesforceSandbox

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


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
                        "client_secret": {"env": "ACME_SF_SECRET"},
                    },
                }
            ),
            encoding="utf-8",
        )
        env = {
            **os.environ,
            "HUB_HOME": str(home),
            "HUB_MEMBERS_DIR": str(members),
            "DAGSTER_HOME": str(tmp_path / "dagster"),
            "ACME_SF_SECRET": sf.client_secret,
            "COLUMNS": "200",
        }
        for var in ("HUB_WAREHOUSE", "HUB_DLT_DIR", "HUB_RELEASES_DIR"):
            env.pop(var, None)
        first = _run(env)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "✓ load acme_trust" in first.stdout
        contacts = sf.ids("Contact")
        loaded = _rows(home, "SELECT id FROM raw_acme_trust.npsp__contact ORDER BY id")
        assert [r[0] for r in loaded] == sorted(contacts)
        deliveries = _rows(home, "SELECT COUNT(*) FROM raw_acme_trust.pmdm__service_delivery")
        assert deliveries[0][0] == len(sf.ids("pmdm__ServiceDelivery__c"))
        gone = sorted(contacts)[0]
        sf.delete_records("Contact", [gone])
        second = _run(env)
        assert second.returncode == 0, second.stdout + second.stderr
        after = _rows(home, "SELECT id, is_deleted FROM raw_acme_trust.npsp__contact ORDER BY id")
        assert len(after) == len(contacts)  # merged on Id: the deletion updates, never duplicates
        assert dict(after)[gone] is True
        env["ACME_SF_SECRET"] = "wrong-secret"
        refused = _run(env)
        assert refused.returncode == 1 and "✗ load acme_trust" in refused.stdout
        assert "wrong-secret" not in refused.stdout + refused.stderr
