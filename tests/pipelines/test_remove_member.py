"""`hub remove-member`, run as an operator runs it, on real files.

The network is test_hub_run's (two spreadsheet members, A1..A3 of alpha are B1..B3 of beta).
A departing member must leave no layer, its folders only when asked, and the next release
must revise the quarters that counted it. (In its own file so the two slow halves of the
erasure tests run on different test workers.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.pipelines.hub_cli import hub, hub_env
from tests.pipelines.test_erasure import _rows
from tests.pipelines.test_hub_run import _write_network

pytestmark = pytest.mark.slow


def test_remove_member_purges_every_layer_and_lists_releases(tmp_path: Path) -> None:
    members = _write_network(tmp_path)
    home = tmp_path / "hub"
    env = hub_env(tmp_path, members)
    assert hub(["run"], env).returncode == 0
    release = (home / "releases" / "LATEST").read_text(encoding="utf-8").strip()
    assert (home / "dlt" / "hub_beta_spreadsheet").is_dir()

    still_configured = hub(["remove-member", "beta", "--yes"], env)
    assert (
        still_configured.returncode == 2 and "beta.yaml is still there" in still_configured.stdout
    )
    (members / "beta.yaml").rename(members / "beta.yaml.left")
    done = hub(["remove-member", "beta", "--yes", "--by", "ops", "--delete-files"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert release in done.stdout and "Quarters that counted its data: 2025-Q1" in done.stdout

    schemas = {r[0] for r in _rows(home, "SELECT schema_name FROM information_schema.schemata")}
    assert not {"raw_beta", "raw_beta_staging"} & schemas
    assert not (home / "dlt" / "hub_beta_spreadsheet").exists()
    assert not (tmp_path / "data" / "beta").exists()  # --delete-files
    assert (tmp_path / "data" / "alpha").is_dir()
    for table in ("canonical.person", "canonical.engagement", "quarantine.rejected_rows"):
        assert not _rows(home, f"SELECT 1 FROM {table} WHERE org_id='beta'"), table
    assert not _rows(
        home, "SELECT 1 FROM hub.person_link WHERE org_id='beta' AND source_id NOT LIKE 'erased:%'"
    )
    log = _rows(home, "SELECT action, org_id, subject, requested_by FROM hub.erasure_log")
    assert log == [("remove-member", "beta", None, "ops")]

    # The network goes on without beta: B1..B3's people are alpha's alone again, and the
    # quarter that counted beta is revised.
    assert hub(["run"], env).returncode == 0
    (plan,) = _rows(home, "SELECT plan FROM hub.release_meta")[0]
    assert json.loads(plan)["revised"] == ["2025-Q1"]
    assert not _rows(home, "SELECT 1 FROM hub.person_link WHERE org_id='beta'")
    assert not _rows(home, "SELECT 1 FROM hub.activity WHERE org_id='beta'")
    nothing = hub(["remove-member", "beta", "--yes"], env)
    assert nothing.returncode == 1 and "nothing" in nothing.stdout


def test_remove_member_keeps_the_member_files_unless_asked(tmp_path: Path) -> None:
    members = _write_network(tmp_path)
    env = hub_env(tmp_path, members)
    assert hub(["run", "--org", "beta"], env).returncode in (0, 1)
    shutil.move(members / "beta.yaml", tmp_path / "beta.yaml")
    # The hub's copy of files fetched from a member's bucket (connector.location) is the
    # hub's own: it goes with the member even when the member's own files are kept.
    cached = tmp_path / "hub" / "cache" / "files" / "beta"
    cached.mkdir(parents=True)
    (cached / "people.csv").write_text("Client ID\n1\n", encoding="utf-8")
    done = hub(["remove-member", "beta", "--yes"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "data" / "beta").is_dir() and "kept" in done.stdout
    assert not cached.exists() and f"deleted {cached}" in " ".join(done.stdout.split())
    bad = hub(["remove-member", "../alpha", "--yes"], env)
    assert bad.returncode == 2
