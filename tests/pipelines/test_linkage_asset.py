"""The hub/person_link asset tells the operator when a blocking rule was over its budget.

A real Dagster materialisation of the asset on a DuckDB warehouse whose canonical.person
holds a crowd (one postcode and one given name shared by 60 people), with a tiny budget set
the way an operator would: environment variables.
"""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg
import pytest

from pipelines.defs.linkage.assets import person_link
from pipelines.lib.hub import HubResource
from tests.transforms.test_dedup_budget import CROWD_GIVEN, CROWD_POSTCODE, OTHERS, _crowd
from tests.transforms.test_dedup_incremental import _write
from transforms.warehouse import DuckDBWarehouse

REPO = Path(__file__).resolve().parents[2]
MEMBER = "riverside_food"  # a member of the repository's members/ folder (kept, not removed)


def test_person_link_reports_blocking_warnings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_LINK_MAX_BLOCK_PAIRS", "100")
    monkeypatch.setenv("HUB_LINK_MAX_RULE_PAIRS", "10000")
    warehouse_path = tmp_path / "warehouse.duckdb"
    rows = [(MEMBER, *r[1:]) for r in OTHERS + _crowd(60)]
    _write(DuckDBWarehouse(warehouse_path), rows)
    hub = HubResource(
        home=str(tmp_path / "home"),
        members_dir=str(REPO / "members"),
        warehouse_path=str(warehouse_path),
    )
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([person_link], resources={"hub": hub}, instance=instance)
    assert result.success
    [materialization] = result.asset_materializations_for_node("hub__person_link")
    metadata = materialization.metadata
    assert metadata["blocking_warnings"].value >= 1
    reported = metadata["blocking_budget"].value
    crowd_rule = next(w for w in reported if w["rule"] == "postcode + given_canonical")
    assert crowd_rule["largest_block_records"] == 60 and crowd_rule["action"] == "tightened"
    assert crowd_rule["pairs_dropped"] > 0

    logged = [
        entry.user_message
        for entry in instance.all_logs(result.run_id)
        if entry.level == logging.WARNING and "blocking rule" in entry.user_message
    ]
    assert any("[postcode + given_canonical] tightened" in m for m in logged)
    assert any("60 records" in m for m in logged)
    text = (repr(reported) + " ".join(logged)).lower()
    for value in (CROWD_GIVEN, CROWD_POSTCODE, "Ashdown", "Okafor", "rob@example.org"):
        assert value.lower() not in text
