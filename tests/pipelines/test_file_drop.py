"""The file-drop sensor triggers on content: a touched-but-unchanged file requests nothing, an
edit exactly one run, and so do a new export matching a table's pattern and a removed file.
The same holds for files at an fsspec location, copied into the member's cache as they are
hashed. Sensors are evaluated against a real (SQLite) Dagster instance, as the daemon does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import fsspec
import pytest
import yaml
from dagster_dlt import DagsterDltResource

from pipelines.definitions import defs
from pipelines.defs.ingest.loads import load_keys, raw_keys
from pipelines.defs.ingest.sensors import member_files, spreadsheet_changed
from pipelines.lib.hub import HubResource
from tests.pipelines.test_sensor import Ticks

ORG = "alpha"
PEOPLE = "Client ID\n1\n2\n"


def _config(location: str | None = None) -> dict[str, Any]:
    connector: dict[str, Any] = {
        "kind": "spreadsheet",
        "tables": {
            "person": {"file": "people.csv", "columns": {"source_id": "Client ID"}},
            "service_delivery": {
                "file": "sessions-*.csv",
                "columns": {"person_source_id": "Client", "delivered_on": "Date"},
                "defaults": {"programme": "Food Bank"},
            },
        },
    }
    if location:
        connector["location"] = location
    return {
        "name": "Alpha",
        "connector": connector,
        "sharing": {"consent": "none"},
        "mappings": {"programmes": {"Food Bank": "food_security"}},
    }


def _members(tmp_path: Path, location: str | None = None) -> Path:
    members = tmp_path / "members"
    members.mkdir()
    (members / f"{ORG}.yaml").write_text(yaml.safe_dump(_config(location)), encoding="utf-8")
    return members


def _rewrite(path: Path, text: str) -> None:
    """Write ``text`` (maybe the same as before) with a modification time clearly later."""
    before = path.stat().st_mtime if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    later = max(before, path.stat().st_mtime) + 5
    os.utime(path, (later, later))


def _runs(data: dg.SensorExecutionData) -> list[str]:
    return [r.partition_key for r in data.run_requests or []]


def _ready(tick: Ticks) -> None:
    """Partitions added (member_files, which also asks for the first load), then watched."""
    assert _runs(tick(member_files)) == [ORG]
    first = tick(spreadsheet_changed)
    assert not first.run_requests and f"now watching {ORG}" in str(first.skip_message)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def test_local_files_trigger_on_content_exactly_once(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    folder = tmp_path / ORG
    folder.mkdir()
    people = folder / "people.csv"
    people.write_text(PEOPLE, encoding="utf-8")
    (folder / "sessions-2025-01.csv").write_text("Client,Date\n1,2025-01-02\n", encoding="utf-8")
    # Relative to the YAML file's folder: members/../alpha/
    config = _config()
    for table in config["connector"]["tables"].values():
        table["file"] = f"../{ORG}/{table['file']}"
    members = tmp_path / "members"
    members.mkdir()
    (members / f"{ORG}.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    tick = Ticks(instance, HubResource(members_dir=str(members), home=str(tmp_path / "hub")))
    _ready(tick)

    # Touched, and rewritten with the same bytes: no run.
    later = people.stat().st_mtime + 5
    os.utime(people, (later, later))
    assert not tick(spreadsheet_changed).run_requests
    _rewrite(people, PEOPLE)
    assert "no member spreadsheet changed" in str(tick(spreadsheet_changed).skip_message)

    # An edit: exactly one run, of the member's spreadsheet load; the next tick is quiet.
    _rewrite(people, PEOPLE + "3\n")
    edit = tick(spreadsheet_changed)
    assert _runs(edit) == [ORG]
    (request,) = edit.run_requests or []
    assert list(request.asset_selection or []) == load_keys("spreadsheet")
    assert (request.tags["hub/trigger"], request.tags["hub/member"]) == ("file", ORG)
    assert not tick(spreadsheet_changed).run_requests

    # A tick evaluated again from the same cursor (a daemon crash before the cursor was
    # saved) asks with the same run key, which Dagster launches only once.
    cursor = tick.cursors[spreadsheet_changed.name]
    _rewrite(people, PEOPLE + "4\n")
    again = tick(spreadsheet_changed)
    tick.cursors[spreadsheet_changed.name] = cursor
    replayed = tick(spreadsheet_changed)
    assert [r.run_key for r in again.run_requests or []] == [
        r.run_key for r in replayed.run_requests or []
    ]

    # The first content written back after the edits: a change again, with a new run key.
    _rewrite(people, PEOPLE)
    back = tick(spreadsheet_changed)
    assert _runs(back) == [ORG]
    keys = {r.run_key for r in (edit.run_requests or []) + (again.run_requests or [])}
    assert back.run_requests[0].run_key not in keys

    # A new monthly export matching the pattern: one run; Excel's lock file beside it: none.
    (folder / "~$sessions-2025-02.csv").write_text("lock", encoding="utf-8")
    assert not tick(spreadsheet_changed).run_requests
    (folder / "sessions-2025-02.csv").write_text("Client,Date\n2,2025-02-02\n", encoding="utf-8")
    assert _runs(tick(spreadsheet_changed)) == [ORG]
    assert not tick(spreadsheet_changed).run_requests
    # A file removed: one run (the load drops its rows).
    (folder / "sessions-2025-01.csv").unlink()
    assert _runs(tick(spreadsheet_changed)) == [ORG]
    assert not tick(spreadsheet_changed).run_requests

    # The stamp decides whether a file is read again: same size, time and inode, so it
    # is not (what makes a tick cheap; every write a person or a tool makes moves the time).
    stat = people.stat()
    with people.open("r+", encoding="utf-8") as fh:
        fh.write(PEOPLE.replace("1", "7"))
    os.utime(people, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert not tick(spreadsheet_changed).run_requests
    # The member file itself is still followed by member_files (partitions kept in step).
    assert not tick(member_files).run_requests


def test_a_remote_location_triggers_on_content_and_loads_from_the_cache(
    tmp_path: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_TEST_MEMORY_LOCATIONS", "1")
    bucket = fsspec.filesystem("memory")
    if bucket.exists("/drop"):
        bucket.rm("/drop", recursive=True)
    bucket.pipe(f"/drop/{ORG}/people.csv", PEOPLE.encode())
    bucket.pipe(f"/drop/{ORG}/sessions-2025-01.csv", b"Client,Date\n1,2025-01-02\n")
    members = _members(tmp_path, f"memory://drop/{ORG}/")
    home = tmp_path / "hub"
    hub = HubResource(
        home=str(home),
        members_dir=str(members),
        warehouse_path=str(home / "warehouse.duckdb"),
        pipelines_dir=str(home / "dlt"),
    )
    tick = Ticks(instance, hub)
    try:
        _ready(tick)
        copy = home / "cache" / "files" / ORG
        assert (copy / "people.csv").read_text(encoding="utf-8") == PEOPLE

        # The same bytes uploaded again (a new modification time): fetched, hashed, no run.
        bucket.pipe(f"/drop/{ORG}/people.csv", PEOPLE.encode())
        assert not tick(spreadsheet_changed).run_requests
        # An edit: one run, and the copy already holds the new bytes.
        bucket.pipe(f"/drop/{ORG}/people.csv", (PEOPLE + "3\n").encode())
        edit = tick(spreadsheet_changed)
        assert _runs(edit) == [ORG]
        assert (copy / "people.csv").read_text(encoding="utf-8") == PEOPLE + "3\n"
        assert not tick(spreadsheet_changed).run_requests
        # Written back: one run with a new key.
        bucket.pipe(f"/drop/{ORG}/people.csv", PEOPLE.encode())
        back = tick(spreadsheet_changed)
        assert _runs(back) == [ORG] and back.run_requests[0].run_key != edit.run_requests[0].run_key
        # A new export matching the pattern: one run; one removed: one run, gone from the copy.
        bucket.pipe(f"/drop/{ORG}/sessions-2025-02.csv", b"Client,Date\n2,2025-02-02\n")
        assert _runs(tick(spreadsheet_changed)) == [ORG]
        bucket.rm(f"/drop/{ORG}/sessions-2025-01.csv")
        assert _runs(tick(spreadsheet_changed)) == [ORG]
        assert not (copy / "sessions-2025-01.csv").exists()
        assert not tick(spreadsheet_changed).run_requests

        # The load the sensor asked for reads the member's copy into its raw tables.
        definitions = defs()
        result = dg.materialize(
            [*(definitions.assets or [])],
            selection=dg.AssetSelection.assets(*raw_keys("spreadsheet")),
            partition_key=ORG,
            instance=instance,
            resources={"hub": hub, "dlt_resource": DagsterDltResource()},
        )
        assert result.success
        con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
        try:
            people = con.execute(f"SELECT count(*) FROM raw_{ORG}.spreadsheet__person").fetchone()
            files = con.execute(
                f"SELECT DISTINCT _source_file FROM raw_{ORG}.spreadsheet__service_delivery"
            ).fetchall()
        finally:
            con.close()
        assert people == (2,)
        assert files == [("sessions-2025-02.csv",)]
    finally:
        bucket.rm("/drop", recursive=True)


def test_a_location_that_cannot_be_listed_changes_nothing(
    tmp_path: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreachable bucket is never read as "every file gone": no run, what was seen kept."""
    import sys

    members = _members(tmp_path, f"s3://network-drop/{ORG}/")
    tick = Ticks(instance, HubResource(members_dir=str(members), home=str(tmp_path / "hub")))
    monkeypatch.setitem(sys.modules, "s3fs", None)  # the backend missing: it cannot be listed
    assert _runs(tick(member_files)) == [ORG]
    for _ in range(2):
        data = tick(spreadsheet_changed)
        assert not data.run_requests
        assert f"files not looked at this tick (see the log): {ORG}" in str(data.skip_message)
    assert '"members": {}' in str(tick.cursors[spreadsheet_changed.name])
