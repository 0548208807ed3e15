"""A CiviCRM member through `hub run`: its raw data loads over real HTTP, incrementally.

The sandbox runs in this process; `hub run` runs in a fresh one, as an operator runs
it, and reaches the sandbox over loopback.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import yaml

from sandboxes.civicrm import CiviCRMSandbox
from tests.pipelines.hub_cli import hub, hub_env
from tests.pipelines.test_hub_run import _write_network

pytestmark = pytest.mark.slow


def _member_file(members: Path, civi: CiviCRMSandbox, **connector: object) -> None:
    """members/bridge_centre.yaml reading the sandbox, with any extra connector keys."""
    config = {
        "name": "Bridge Centre",
        "connector": {
            "kind": "civicrm",
            "site_url": civi.url,
            "api_key": {"env": "HUB_BRIDGE_CENTRE_CIVI_KEY"},
            **connector,
        },
    }
    (members / "bridge_centre.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")


def _count(home: Path, table: str, where: str = "TRUE") -> int:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(
            f"SELECT COUNT(*) FROM raw_bridge_centre.{table} WHERE {where}"
        ).fetchone()[0]
    finally:
        con.close()


def test_civicrm_member_loads_raw_data_and_then_only_changes(tmp_path: Path) -> None:
    members, home = tmp_path / "members", tmp_path / "hub"
    members.mkdir()
    with CiviCRMSandbox(contacts=12, activities_per_contact=2) as civi:
        _member_file(members, civi)
        env = hub_env(tmp_path, members, HUB_BRIDGE_CENTRE_CIVI_KEY=civi.api_key)
        first = hub(["run"], env)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "✓ load bridge_centre" in first.stdout
        contacts = len(civi.data.tables["Contact"])
        assert _count(home, "civicrm__contact") == contacts
        assert _count(home, "civicrm__activity") == len(civi.data.tables["Activity"])
        assert civi.api_key not in (home / "warehouse.duckdb").read_bytes().decode("latin-1")
        trashed = next(iter(civi.data.tables["Contact"]))
        civi.trash_contact(trashed)
        second = hub(["run"], env)
        assert second.returncode == 0, second.stdout + second.stderr
        assert _count(home, "civicrm__contact") == contacts  # merged on id, no duplicates
        assert _count(home, "civicrm__contact", f"id = {trashed} AND is_deleted") == 1
        env["HUB_BRIDGE_CENTRE_CIVI_KEY"] = "wrong-key"
        refused = hub(["run"], env)
        assert refused.returncode == 1
        assert "✗ load bridge_centre" in refused.stdout and "API key" in refused.stdout
        assert "wrong-key" not in refused.stdout + refused.stderr


def test_a_load_past_its_deadline_holds_back_only_that_member(tmp_path: Path) -> None:
    """A CiviCRM site answering every request a second late, each answer in time, held the
    run for as long as it had pages (issue #18). With load_deadline: 3 the member's load
    fails in seconds, saying which setting to raise; the other members load and publish."""
    members = _write_network(tmp_path)
    home = tmp_path / "hub"
    with CiviCRMSandbox(contacts=40, activities_per_contact=0) as civi:
        _member_file(members, civi, page_size=1, load_deadline=3)
        civi.slow_down(1.0)
        env = hub_env(tmp_path, members, HUB_BRIDGE_CENTRE_CIVI_KEY=civi.api_key)
        run = hub(["run"], env)
        calls = len(civi.http_requests)  # each pays the latency (a batch is one)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "✗ load bridge_centre" in run.stdout
    assert "load_deadline = 3 s" in run.stdout and "members/bridge_centre.yaml" in run.stdout
    assert "✓ load alpha" in run.stdout and "✓ load beta" in run.stdout
    assert "✓ publish" in run.stdout
    assert calls < 10  # stopped at the deadline, and the load was not tried again
    assert civi.api_key not in out
    assert (home / "releases" / "LATEST").exists()  # the others were published
