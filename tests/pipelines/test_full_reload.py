"""`hub run --full <org>`: one member's tables re-read from scratch, for every connector kind.

The raw load stage runs in this process (with the run tag `hub run --full` sets on it), which
is what differs between kinds; the command line is checked in process for its refusal of an
unknown member and its help. The whole command runs with CiviCRM in test_civicrm_run.py.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml
from typer.testing import CliRunner

from connectors.members import load_members
from pipelines.cli import app
from pipelines.defs.ingest.loads import raw_keys
from pipelines.lib.members import sync_member_partitions
from pipelines.lib.raw_assets import FULL_RELOAD_TAG
from pipelines.lib.runner import plan_stages, run_stage
from pipelines.settings import HubSettings
from sandboxes.salesforce_npsp import SalesforceSandbox
from tests.pipelines.test_hub_run import _write_network

pytestmark = pytest.mark.slow


def _settings(tmp_path: Path, members: Path) -> HubSettings:
    home = tmp_path / "hub"
    return HubSettings(
        home=home,
        members_dir=members,
        warehouse_path=home / "warehouse.duckdb",
        pipelines_dir=home / "dlt",
        releases_dir=home / "releases",
        disclosure_threshold=5,
    )


def _load(settings: HubSettings, org: str, kind: str, full: bool = False) -> None:
    instance = dg.DagsterInstance.ephemeral()
    sync_member_partitions(instance, load_members(settings.members_dir))
    result = run_stage(
        f"load {org}",
        raw_keys(kind),
        settings,
        instance,
        org,
        tags={FULL_RELOAD_TAG: "true"} if full else None,
    )
    assert result.success, result.error


def _load_ids(settings: HubSettings, table: str) -> list[tuple[str, int]]:
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return con.execute(
            f"SELECT _dlt_load_id, count(*) FROM {table} GROUP BY 1 ORDER BY 1"
        ).fetchall()
    finally:
        con.close()


def test_full_reloads_an_unchanged_spreadsheet(tmp_path: Path) -> None:
    settings = _settings(tmp_path, _write_network(tmp_path))
    _load(settings, "alpha", "spreadsheet")
    first = _load_ids(settings, "raw_alpha.spreadsheet__person")
    _load(settings, "alpha", "spreadsheet")  # unchanged files: skipped
    assert _load_ids(settings, "raw_alpha.spreadsheet__person") == first
    _load(settings, "alpha", "spreadsheet", full=True)
    again = _load_ids(settings, "raw_alpha.spreadsheet__person")
    assert len(again) == 1 and again[0][0] != first[0][0] and again[0][1] == first[0][1]


def test_full_rereads_every_salesforce_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = tmp_path / "members"
    members.mkdir()
    settings = _settings(tmp_path, members)
    with SalesforceSandbox() as sf:
        config = {
            "name": "Acme Trust",
            "connector": {
                "kind": "salesforce_npsp",
                "login_url": sf.url,
                "client_id": sf.client_id,
                "client_secret": {"env": "HUB_ACME_TRUST_SF_SECRET"},
            },
        }
        (members / "acme_trust.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        monkeypatch.setenv("HUB_ACME_TRUST_SF_SECRET", sf.client_secret)
        _load(settings, "acme_trust", "salesforce_npsp")
        first = _load_ids(settings, "raw_acme_trust.npsp__contact")
        _load(settings, "acme_trust", "salesforce_npsp")
        assert _load_ids(settings, "raw_acme_trust.npsp__contact") == first  # nothing new
        _load(settings, "acme_trust", "salesforce_npsp", full=True)
        again = _load_ids(settings, "raw_acme_trust.npsp__contact")
        assert len(again) == 1 and again[0][0] != first[0][0]
        assert again[0][1] == len(sf.ids("Contact"))


def test_full_with_an_unknown_member_is_refused_and_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = _write_network(tmp_path)
    monkeypatch.setenv("HUB_MEMBERS_DIR", str(members))
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "hub"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("COLUMNS", "200")
    refused = CliRunner().invoke(app, ["run", "--full", "gamma"])
    assert refused.exit_code == 2
    assert "Unknown member(s): gamma" in refused.output and "--full" in refused.output
    assert not (tmp_path / "hub" / "warehouse.duckdb").exists()  # nothing was loaded
    helped = CliRunner().invoke(app, ["run", "--help"])
    assert "--full" in helped.output and "from scratch" in helped.output


def test_only_the_named_members_load_is_tagged_full() -> None:
    kinds = {"alpha": "spreadsheet", "beta": "salesforce_npsp", "civi": "civicrm"}
    stages = plan_stages(kinds, {"beta"})
    assert [name for name, *_ in stages] == [
        "load alpha",
        "map alpha",
        "full load beta",
        "map beta",
        "load civi",
        "map civi",
        "link people",
        "publish",
    ]
    tagged = {name: (partition, tags) for name, _, partition, tags in stages if tags}
    assert tagged == {"full load beta": ("beta", {FULL_RELOAD_TAG: "true"})}
