"""What the daemon does, driven in-process: sensors add member partitions and request loads,
declarative automation rebuilds the rest, a release is written. No `hub run`, no reload.

Each step is what a daemon tick does: a sensor tick (its dynamic partition requests applied
to the instance, then its run requests executed), then automation evaluations, each
executing what it requests (partitioned runs first, then the network's assets), until
automation requests nothing.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml
from dagster_dlt import DagsterDltResource

from pipelines.definitions import defs
from pipelines.defs.ingest.sensors import member_files, spreadsheet_changed
from pipelines.defs.publish.assets import PUBLISH_KEYS
from pipelines.defs.publish.sensors import republish_when_held_back
from pipelines.lib.hub import HubResource
from pipelines.lib.instance import prepare_dagster_home
from pipelines.lib.members import MEMBERS
from tests.pipelines.test_hub_run import _published, _write_network

pytestmark = pytest.mark.slow


class Daemon:
    """Ticks sensors and automation against one persistent instance, running what they ask."""

    def __init__(self, instance: dg.DagsterInstance, hub: HubResource) -> None:
        self.instance = instance
        self.resources = {"hub": hub, "dlt_resource": DagsterDltResource()}
        self.definitions = defs()
        self.graph = [*(self.definitions.assets or []), *(self.definitions.asset_checks or [])]
        self.keys = self.definitions.resolve_asset_graph().get_all_asset_keys()
        self.cursors: dict[str, str | None] = {}
        self.automation_cursor = None
        self.ran: list[tuple[str | None, frozenset[dg.AssetKey]]] = []
        self.results: list[dg.ExecuteInProcessResult] = []

    expect_success = True

    def _run(self, keys: set[dg.AssetKey], partition: str | None, tags=None) -> None:
        result = dg.materialize(
            self.graph,
            selection=dg.AssetSelection.assets(*keys),
            partition_key=partition,
            instance=self.instance,
            resources=self.resources,
            tags=tags,
            raise_on_error=False,
        )
        assert result.success == self.expect_success, (
            f"run of {sorted(k.to_user_string() for k in keys)}: success={result.success}"
        )
        self.ran.append((partition, frozenset(keys)))
        self.results.append(result)

    def tick(self, sensor: dg.SensorDefinition) -> dg.SensorExecutionData:
        context = dg.build_sensor_context(
            instance=self.instance,
            instance_ref=self.instance.get_ref(),  # as in the daemon: partitions are read
            cursor=self.cursors.get(sensor.name),
            resources=self.resources,
            definitions=self.definitions,
        )
        data = sensor.evaluate_tick(context)
        for request in data.dynamic_partitions_requests or []:
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                self.instance.add_dynamic_partitions(
                    request.partitions_def_name, list(request.partition_keys)
                )
            else:
                for key in request.partition_keys:
                    self.instance.delete_dynamic_partition(request.partitions_def_name, key)
        for request in data.run_requests or []:
            self._run(set(request.asset_selection or []), request.partition_key, request.tags)
        self.cursors[sensor.name] = data.cursor
        return data

    @contextmanager
    def _partitions_read_once(self) -> Iterator[None]:
        """Within one evaluation, read each dynamic partitions definition's keys once.

        Nothing adds a partition during an evaluation, so the answer cannot change. Dagster's
        test helper otherwise reads them from storage again for every asset while it writes
        the cursor (a new SQLite connection each time): half of this test's time.
        """
        read = self.instance.get_dynamic_partitions
        known: dict[str, Sequence[str]] = {}

        def once(partitions_def_name: str) -> Sequence[str]:
            if partitions_def_name not in known:
                known[partitions_def_name] = read(partitions_def_name)
            return known[partitions_def_name]

        self.instance.get_dynamic_partitions = once  # type: ignore[method-assign]
        try:
            yield
        finally:
            del self.instance.get_dynamic_partitions

    def automate(self, limit: int = 8) -> list[dict[str | None, set[dg.AssetKey]]]:
        """Evaluate automation and run what it requests until it requests nothing."""
        rounds = []
        for _ in range(limit):
            with self._partitions_read_once():
                result = dg.evaluate_automation_conditions(
                    defs=self.definitions, instance=self.instance, cursor=self.automation_cursor
                )
            self.automation_cursor = result.cursor
            wanted: dict[str | None, set[dg.AssetKey]] = defaultdict(set)
            for key in self.keys:
                for partition in result.get_requested_partitions(key):
                    wanted[partition].add(key)
            if not wanted:
                return rounds
            rounds.append(dict(wanted))
            for partition in sorted(p for p in wanted if p is not None):
                self._run(wanted[partition], partition)
            if None in wanted:
                self._run(wanted[None], None)
        raise AssertionError(f"automation still requesting after {limit} rounds: {rounds}")


def _latest(releases: Path) -> str:
    return (releases / "LATEST").read_text(encoding="utf-8").strip()


def _organisations(home: Path) -> list[str]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT org_id FROM published.organisation_summary ORDER BY 1")
        return [org for (org,) in rows.fetchall()]
    finally:
        con.close()


def _mapped(daemon: Daemon, since: int) -> list[str | None]:
    """The partitions of the runs since ``since`` that built the canonical model."""
    canonical = dg.AssetKey(["canonical", "person"])
    return sorted(
        p
        for p, result in zip(
            [p for p, _ in daemon.ran[since:]], daemon.results[since:], strict=True
        )
        if any(
            m.asset_key == canonical
            for m in result.asset_materializations_for_node("canonical_model")
        )
    )


def _raw_partitions(daemon: Daemon, since: int) -> set[str | None]:
    return {p for p, keys in daemon.ran[since:] if any(k.path[0] == "raw" for k in keys)}


def test_daemon_loads_links_and_publishes_without_a_reload(tmp_path: Path) -> None:
    members = _write_network(tmp_path)
    home = tmp_path / "hub"
    releases = home / "releases"
    hub = HubResource(
        home=str(home),
        members_dir=str(members),
        warehouse_path=str(home / "warehouse.duckdb"),
        pipelines_dir=str(home / "dlt"),
        releases_dir=str(releases),
        disclosure_threshold=5,
    )
    # A persistent instance configured like `make dev`'s (the repo's dagster.yaml).
    home_dir = prepare_dagster_home(tmp_path / "dagster")
    with dg.DagsterInstance.from_config(str(home_dir)) as instance:
        daemon = Daemon(instance, hub)
        assert daemon.automate() == []  # no member partitions yet: nothing to do

        # 1. The member-files sensor adds both members' partitions and loads them, in one tick.
        first = daemon.tick(member_files)
        assert sorted(instance.get_dynamic_partitions(MEMBERS.name)) == ["alpha", "beta"]
        assert [r.partition_key for r in first.run_requests or []] == ["alpha", "beta"]
        # The spreadsheet sensor starts watching them; their first load was member_files'.
        watching = daemon.tick(spreadsheet_changed)
        assert not watching.run_requests and "now watching alpha, beta" in str(
            watching.skip_message
        )
        rounds = daemon.automate()
        canonical = dg.AssetKey(["canonical", "person"])
        # A load run maps its member in the same run when it materialised every raw table
        # the mapping reads (beta); alpha has no sessions file, so its mapping step is
        # skipped and automation maps it. Either way each member is mapped exactly once.
        assert {p for p, keys in rounds[0].items() if canonical in keys} == {"alpha"}
        assert _mapped(daemon, 0) == ["alpha", "beta"]
        assert dg.AssetKey(["published", "release"]) in rounds[-1][None]
        first_release = _latest(releases)
        assert (releases / first_release / "datapackage.json").exists()
        summary, reach = _published(home)
        assert summary[("all", "housing", "all")] == (7, 5, 7, None)  # hand count
        assert reach["all"] == (10, None, None, None)
        assert _organisations(home) == ["alpha", "beta"]
        assert daemon.tick(member_files).skip_message.startswith("no member file added")

        # 2. One member's CSV gains a row: only that member is reloaded and remapped.
        since = len(daemon.ran)
        people = tmp_path / "data" / "alpha" / "alpha_people.csv"
        with people.open("a", encoding="utf-8", newline="") as fh:
            csv.writer(fh).writerow(["A99", "Nia", "Okafor", "02/02/1990", "M14 5AB", "Yes"])
        later = time.time() + 5
        os.utime(people, (later, later))
        changed = daemon.tick(spreadsheet_changed)
        assert [r.partition_key for r in changed.run_requests or []] == ["alpha"]
        rounds = daemon.automate()
        assert {p for p, keys in rounds[0].items() if canonical in keys} == {"alpha"}
        assert _mapped(daemon, since) == ["alpha"]
        assert _raw_partitions(daemon, since) == {"alpha"}
        assert {p for p, _ in daemon.ran[since:] if p is not None} == {"alpha"}
        summary_after_change = _published(home)[0]
        second_release = _latest(releases)
        assert second_release != first_release
        assert (releases / second_release / "datapackage.json").exists()

        # 3. A third member file: its partition is added and its load requested, no reload.
        config = yaml.safe_load((members / "beta.yaml").read_text(encoding="utf-8"))
        config["name"] = "Gamma Advice"
        shutil.copytree(tmp_path / "data" / "beta", tmp_path / "data" / "gamma")  # its own
        for table in config["connector"]["tables"].values():
            table["file"] = table["file"].replace("/beta/", "/gamma/")
        (members / "gamma.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        since = len(daemon.ran)
        third = daemon.tick(member_files)
        assert [r.partition_key for r in third.run_requests or []] == ["gamma"]
        assert "gamma" in instance.get_dynamic_partitions(MEMBERS.name)
        assert _raw_partitions(daemon, since) == {"gamma"}  # loaded with the same definitions

        # 4. Alpha's people file goes missing: its load fails and alpha is held back, with
        # its last good data kept. When the file comes back unchanged, the load finds
        # nothing new (so no mapping follows) and alpha is current again.
        from transforms.member_status import member_statuses
        from transforms.warehouse import DuckDBWarehouse

        aside = people.with_suffix(".aside")
        people.rename(aside)
        daemon.expect_success = False
        gone = daemon.tick(spreadsheet_changed)
        daemon.expect_success = True
        assert [r.partition_key for r in gone.run_requests or []] == ["alpha"]
        statuses = member_statuses(DuckDBWarehouse(home / "warehouse.duckdb"))
        assert statuses["alpha"].status == "held_back" and statuses["alpha"].stage == "load"
        assert statuses["beta"].status == "current"
        # A failed load materialises nothing for automation to follow; the failure sensor
        # asks for a new release, which names alpha as held back with its last good data.
        failed = daemon.results[-1]
        context = dg.build_run_status_sensor_context(
            sensor_name=republish_when_held_back.name,
            dagster_event=failed.get_run_failure_event(),
            dagster_instance=instance,
            dagster_run=failed.dagster_run,
            resources=daemon.resources,
        ).for_run_failure()
        request = republish_when_held_back(context)
        assert isinstance(request, dg.RunRequest), request
        before = _latest(releases)
        daemon._run(set(PUBLISH_KEYS), None, request.tags)
        held = _latest(releases)
        assert held != before
        package = json.loads((releases / held / "datapackage.json").read_text(encoding="utf-8"))
        assert [m["org_id"] for m in package["heldBackMembers"]] == ["alpha"]
        assert _published(home)[0] == summary_after_change  # alpha's last good data, counted
        aside.rename(people)
        back = daemon.tick(spreadsheet_changed)
        assert [r.partition_key for r in back.run_requests or []] == ["alpha"]
        statuses = member_statuses(DuckDBWarehouse(home / "warehouse.duckdb"))
        assert statuses["alpha"].status == "current"
