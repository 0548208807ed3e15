"""The spreadsheet sensor requests a member's load exactly when its files change."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg
import yaml

from pipelines.defs.ingest.sensors import spreadsheet_changed
from pipelines.defs.ingest.spreadsheets import spreadsheet_raw
from pipelines.lib.hub import HubResource


def _member(folder: Path, org: str, file: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{org}.yaml").write_text(
        yaml.safe_dump(
            {
                "name": org.title(),
                "connector": {
                    "kind": "spreadsheet",
                    "tables": {"person": {"file": str(file), "columns": {"source_id": "id"}}},
                },
                "sharing": {"consent": "none"},
            }
        ),
        encoding="utf-8",
    )


def test_sensor_requests_runs_only_for_changed_members(tmp_path: Path) -> None:
    # Partitions are fixed when definitions load (from the repo's members/); reuse two ids.
    partitions = spreadsheet_raw.partitions_def.get_partition_keys()  # type: ignore[union-attr]
    assert len(partitions) >= 2
    first_org, second_org = partitions[:2]
    members = tmp_path / "members"
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("id\n1\n", encoding="utf-8")
    b.write_text("id\n2\n", encoding="utf-8")
    _member(members, first_org, a)
    _member(members, second_org, b)
    _member(members, "newcomer", a)  # no partition yet: logged, never requested
    hub = HubResource(members_dir=str(members))
    instance = dg.DagsterInstance.ephemeral()

    def tick(cursor: str | None) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"hub": hub})
        return spreadsheet_changed(context)

    first = tick(None)
    assert {r.partition_key for r in first.run_requests or []} == {first_org, second_org}
    second = tick(first.cursor)
    assert not second.run_requests
    assert "no member spreadsheet changed" in str(second.skip_reason)
    later = time.time() + 5
    b.write_text("id\n2\n3\n", encoding="utf-8")
    os.utime(b, (later, later))
    third = tick(second.cursor)
    assert [r.partition_key for r in third.run_requests or []] == [second_org]
    assert third.run_requests[0].run_key != first.run_requests[1].run_key
