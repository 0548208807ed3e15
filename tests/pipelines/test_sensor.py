"""Sensors and the refresh schedule decide from stored state; member partitions follow the
member files without a code-location reload."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml

from pipelines.definitions import defs
from pipelines.defs.ingest.loads import load_keys
from pipelines.defs.ingest.schedules import refresh_members, refresh_timing
from pipelines.defs.ingest.sensors import member_files, spreadsheet_changed
from pipelines.lib.hub import HubResource
from pipelines.lib.members import MEMBERS, sync_member_partitions

ROOT = Path(__file__).resolve().parents[2]
PERSON_LINK = dg.AssetKey(["hub", "person_link"])


def _member(folder: Path, org: str, file: Path) -> None:
    """A member reading ``file``, through a hard link in its own folder (a member reads only
    a folder named after it), so that rewriting ``file`` changes what every member reads."""
    folder.mkdir(parents=True, exist_ok=True)
    own = file.parent / org / file.name
    own.parent.mkdir(exist_ok=True)
    if not own.exists():
        os.link(file, own)
    file = own
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


def _crm_member(folder: Path, org: str) -> None:
    (folder / f"{org}.yaml").write_text(
        yaml.safe_dump(
            {
                "name": org.title(),
                "connector": {
                    "kind": "civicrm",
                    "site_url": "https://crm.example.org",
                    "api_key": {"env": f"HUB_{org.upper()}_CIVI_KEY"},
                },
            }
        ),
        encoding="utf-8",
    )


def _touch(path: Path, text: str) -> None:
    """Rewrite ``path`` with a modification time clearly after the previous one."""
    path.write_text(text, encoding="utf-8")
    later = time.time() + 5
    os.utime(path, (later, later))


class Ticks:
    """Evaluates sensors as the daemon does, applying their partition requests."""

    def __init__(self, instance: dg.DagsterInstance, hub: HubResource) -> None:
        self.instance, self.hub = instance, hub
        self.definitions = defs()
        self.cursors: dict[str, str | None] = {}

    def __call__(self, sensor: dg.SensorDefinition) -> dg.SensorExecutionData:
        context = dg.build_sensor_context(
            instance=self.instance,
            instance_ref=self.instance.get_ref(),
            cursor=self.cursors.get(sensor.name),
            resources={"hub": self.hub},
            definitions=self.definitions,
        )
        data = sensor.evaluate_tick(context)  # resolves run requests against the partitions
        for request in data.dynamic_partitions_requests or []:
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                self.instance.add_dynamic_partitions(MEMBERS.name, list(request.partition_keys))
            else:
                for key in request.partition_keys:
                    self.instance.delete_dynamic_partition(MEMBERS.name, key)
        self.cursors[sensor.name] = data.cursor
        return data

    def partitions(self) -> list[str]:
        return sorted(self.instance.get_dynamic_partitions(MEMBERS.name))


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:  # persistent (SQLite), as the daemon's
        yield instance


def test_member_files_sensor_keeps_partitions_in_step_and_loads_new_members(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    members = tmp_path / "members"
    a = tmp_path / "a.csv"
    a.write_text("id\n1\n", encoding="utf-8")
    _member(members, "alpha", a)
    _member(members, "beta", a)
    _crm_member(members, "bridge")
    tick = Ticks(instance, HubResource(members_dir=str(members)))

    first = tick(member_files)
    assert tick.partitions() == ["alpha", "beta", "bridge"]
    loads = {r.partition_key: r for r in first.run_requests or []}
    assert sorted(loads) == ["alpha", "beta", "bridge"]
    assert list(loads["bridge"].asset_selection or []) == load_keys("civicrm")
    assert list(loads["alpha"].asset_selection or []) == load_keys("spreadsheet")
    assert loads["alpha"].tags["hub/trigger"] == "member_file"

    idle = tick(member_files)
    assert not idle.run_requests and not idle.dynamic_partitions_requests
    assert "no member file added, changed or removed" in str(idle.skip_message)

    # An invalid file keeps its partition (last good data stays) and requests nothing.
    _touch(members / "beta.yaml", "name: Beta\nconnector: {kind: spreadsheet}\n")
    broken = tick(member_files)
    assert not broken.run_requests and tick.partitions() == ["alpha", "beta", "bridge"]
    # Fixed again: loaded again.
    _member(members, "beta", a)
    fixed = tick(member_files)
    assert [r.partition_key for r in fixed.run_requests or []] == ["beta"]

    # A deleted file loses its partition; people are re-linked without its rows.
    (members / "alpha.yaml").unlink()
    removed = tick(member_files)
    assert tick.partitions() == ["beta", "bridge"]
    (relink,) = removed.run_requests or []
    assert list(relink.asset_selection or []) == [PERSON_LINK] and relink.partition_key is None
    assert relink.run_key.startswith("removed:alpha@")

    # A new file: partition and first load in the same tick (no reload of the definitions).
    _member(members, "gamma", a)
    new = tick(member_files)
    assert [r.partition_key for r in new.run_requests or []] == ["gamma"]
    assert "gamma" in tick.partitions()

    # A members folder that disappears (unmounted, misconfigured) removes no partition.
    members.rename(tmp_path / "elsewhere")
    missing = tick(member_files)
    assert "not found" in str(missing.skip_message) and "gamma" in tick.partitions()


def test_spreadsheet_sensor_requests_runs_only_for_changed_members(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    members = tmp_path / "members"
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("id\n1\n", encoding="utf-8")
    b.write_text("id\n2\n", encoding="utf-8")
    _member(members, "alpha", a)
    _member(members, "beta", b)
    tick = Ticks(instance, HubResource(members_dir=str(members)))

    # First sight: watched only; the first loads are the member_files sensor's.
    first = tick(spreadsheet_changed)
    assert not first.run_requests
    assert "now watching alpha, beta" in str(first.skip_message)
    second = tick(spreadsheet_changed)
    assert not second.run_requests
    assert "no member spreadsheet changed" in str(second.skip_message)

    # A change to a member without a partition yet waits for one (asked again later).
    _touch(b, "id\n2\n3\n")
    waiting = tick(spreadsheet_changed)
    assert not waiting.run_requests and "waiting for a partition: beta" in str(waiting.skip_message)
    tick(member_files)  # adds the partitions
    third = tick(spreadsheet_changed)
    assert [r.partition_key for r in third.run_requests or []] == ["beta"]
    assert list(third.run_requests[0].asset_selection or []) == load_keys("spreadsheet")
    _touch(b, "id\n2\n3\n4\n")
    fourth = tick(spreadsheet_changed)
    assert [r.partition_key for r in fourth.run_requests or []] == ["beta"]
    assert fourth.run_requests[0].run_key != third.run_requests[0].run_key


def test_refresh_schedule_loads_every_member_with_a_partition(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    members = tmp_path / "members"
    a = tmp_path / "a.csv"
    a.write_text("id\n1\n", encoding="utf-8")
    _member(members, "alpha", a)
    _crm_member(members, "bridge")
    hub = HubResource(members_dir=str(members))
    definitions = defs()
    when = datetime(2025, 6, 2, 3, 0, tzinfo=UTC)

    def tick() -> dg.ScheduleExecutionData:
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=when,
            resources={"hub": hub},
            repository_def=definitions.get_repository_def(),
        )
        return refresh_members.evaluate_tick(context)

    assert "no member to refresh" in str(tick().skip_message)
    sync_member_partitions(instance, hub.registry())
    _member(members, "gamma", a)  # no partition yet: left to the member_files sensor
    (members / "delta.yaml").write_text("name: Delta\n", encoding="utf-8")  # invalid
    requests = {r.partition_key: r for r in tick().run_requests or []}
    assert sorted(requests) == ["alpha", "bridge"]
    assert list(requests["bridge"].asset_selection or []) == load_keys("civicrm")
    assert list(requests["alpha"].asset_selection or []) == load_keys("spreadsheet")
    assert requests["alpha"].run_key == f"alpha:{when.isoformat()}"
    assert requests["alpha"].tags["hub/trigger"] == "schedule"


def test_refresh_schedule_settings_are_validated() -> None:
    assert refresh_timing({}) == ("0 3 * * *", "Europe/London")
    assert refresh_timing({"HUB_REFRESH_CRON": "30 */6 * * *", "HUB_REFRESH_TIMEZONE": "UTC"}) == (
        "30 */6 * * *",
        "UTC",
    )
    with pytest.raises(ValueError, match="HUB_REFRESH_CRON='every day' is not a cron"):
        refresh_timing({"HUB_REFRESH_CRON": "every day"})
    with pytest.raises(ValueError, match="HUB_REFRESH_TIMEZONE='Mars/Olympus'"):
        refresh_timing({"HUB_REFRESH_TIMEZONE": "Mars/Olympus"})


def test_definitions_load_without_reading_member_files(tmp_path: Path) -> None:
    code = (
        "import connectors.members as m\n"
        "def refuse(*args, **kwargs):\n"
        "    raise AssertionError('member files read while definitions load')\n"
        "m.load_members = m.load_member = refuse\n"
        "from pipelines.definitions import defs\n"
        "repo = defs().get_repository_def()\n"
        "print(sorted(s.name for s in repo.sensor_defs), repo.schedule_defs[0].cron_schedule)\n"
    )
    env = {**os.environ, "HUB_MEMBERS_DIR": str(tmp_path), "HUB_REFRESH_CRON": "15 2 * * 1"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    sensors = str(
        [
            "event_run_failed",
            "event_run_started",
            "event_run_succeeded",
            "hub_automation",
            "inbox_events",
            "member_files",
            "republish_when_held_back",
            "spreadsheet_changed",
        ]
    )
    assert f"{sensors} 15 2 * * 1" in done.stdout
