"""`hub run` when a member's data cannot be taken: a release is right or it is not written.

A member whose load fails keeps its last good data in the release, which says so (exit 1);
with no member's data at all nothing is published and LATEST does not move (exit 3).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.pipelines.hub_cli import hub, hub_env
from tests.pipelines.test_hub_run import _write_network

pytestmark = pytest.mark.slow


def _organisations(release: Path) -> dict[str, dict[str, str]]:
    with (release / "organisation_summary.csv").open(encoding="utf-8", newline="") as fh:
        return {row["org_id"]: row for row in csv.DictReader(fh)}


def _latest(releases: Path) -> Path:
    return releases / (releases / "LATEST").read_text(encoding="utf-8").strip()


def test_failed_member_is_held_back_and_named(tmp_path: Path) -> None:
    members = _write_network(tmp_path)
    releases = tmp_path / "hub" / "releases"
    env = hub_env(tmp_path, members)
    first = hub(["run"], env)
    assert first.returncode == 0, first.stdout + first.stderr
    first_release = _latest(releases)
    before = _organisations(first_release)
    assert {r["status"] for r in before.values()} == {"current"}
    assert before["beta"]["held_back_reason"] == "" and before["beta"]["last_good_load"]

    (tmp_path / "data" / "beta" / "beta_people.csv").unlink()  # beta's next load fails
    second = hub(["run"], env)
    out = second.stdout + second.stderr
    assert second.returncode == 1, out
    assert "✗ load beta" in second.stdout and "✓ publish" in second.stdout
    held = second.stdout[second.stdout.index("Held back") :].split("People:")[0]
    assert "beta: last good load" in held and "beta_people.csv" in held  # the operator's why
    assert "alpha" not in held

    release = _latest(releases)
    assert release != first_release  # a new release, and LATEST moved to it
    after = _organisations(release)
    assert after["alpha"]["status"] == "current"
    assert after["beta"]["status"] == "held_back"
    assert after["beta"]["last_good_load"] == before["beta"]["last_good_load"]
    assert after["beta"]["held_back_reason"].startswith("its last load failed on ")
    assert after["beta"]["records_loaded"] == before["beta"]["records_loaded"]  # still counted
    package = json.loads((release / "datapackage.json").read_text(encoding="utf-8"))
    assert [m["org_id"] for m in package["heldBackMembers"]] == ["beta"]
    published = [*release.glob("*.csv"), release / "datapackage.json", release / "index.html"]
    for path in published:  # the error text stays in the hub
        assert "beta_people.csv" not in path.read_text(encoding="utf-8"), path.name
    page = (release / "index.html").read_text(encoding="utf-8")
    assert 'id="held-back"' in page and "Beta Money Advice" in page


def test_nothing_is_published_without_any_member_data(tmp_path: Path) -> None:
    members = _write_network(tmp_path)
    (members / "beta.yaml").unlink()
    (tmp_path / "data" / "alpha" / "alpha_people.csv").unlink()
    releases = tmp_path / "hub" / "releases"
    done = hub(["run"], hub_env(tmp_path, members))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "✗ load alpha" in done.stdout
    assert "nothing to publish: no member has loaded data yet (all loads failed: load alpha" in (
        done.stdout
    )
    assert "link people" not in done.stdout and "No release was written" in done.stdout
    assert not releases.exists() or not any(releases.iterdir())


def test_publish_assets_refuse_an_empty_warehouse(tmp_path: Path) -> None:
    """Materialised on their own (as automation may), the publish assets refuse too."""
    import dagster as dg

    from pipelines.defs.publish.assets import PUBLISH_KEYS
    from pipelines.lib.runner import run_stage
    from pipelines.settings import HubSettings
    from transforms.member_status import mark_held_back
    from transforms.warehouse import DuckDBWarehouse

    home = tmp_path / "hub"
    settings = HubSettings(
        home=home,
        members_dir=tmp_path / "members",
        warehouse_path=home / "warehouse.duckdb",
        pipelines_dir=home / "dlt",
        releases_dir=home / "releases",
        disclosure_threshold=5,
    )
    (tmp_path / "members").mkdir()
    mark_held_back(DuckDBWarehouse(settings.warehouse_path), "alpha", "load", "no file")
    result = run_stage("publish", PUBLISH_KEYS, settings, dg.DagsterInstance.ephemeral())
    assert not result.success
    assert result.error is not None and result.error.startswith(
        "nothing to publish: no member has loaded data yet (all loads failed: alpha"
    )
    assert not settings.releases_dir.exists() or not any(settings.releases_dir.iterdir())
