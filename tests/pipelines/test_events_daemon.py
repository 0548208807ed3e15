"""Events under the daemon's own sensor tick: the code location loaded as the daemon loads
it, its sensors evaluated by Dagster's sensor daemon loop (run keys, run creation, run status
sensors' cursors), the runs executed as they are launched, against the loopback Salesforce
org over real HTTP.

Each step is one iteration of the sensor daemon, then one of the queued-run coordinator's.
The liberties taken: the daemon's clock is moved ten seconds per iteration (so each sensor's
minimum interval has passed) instead of waiting, and the runs execute in this process as
they are launched instead of in a worker process of their own, their step in process too
(tests/pipelines/in_process_definitions.py).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)
from dagster._daemon.sensor import execute_sensor_iteration

from events.inbox import Change, InboundEvent, inbox_location, open_inbox
from pipelines.defs.events.sensors import inbox_events
from pipelines.lib.event_batches import BATCH_TAG
from pipelines.lib.hub import HubResource
from pipelines.lib.members import MEMBERS
from sandboxes.salesforce_npsp import SalesforceSandbox, SandboxSizes

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
OURS = {"inbox_events", "event_run_started", "event_run_succeeded", "event_run_failed"}
SIZES = SandboxSizes(
    contacts=30,
    programs=2,
    services_per_program=1,
    engagements=10,
    deliveries=10,
    opportunities=2,
    recurring_donations=1,
    outcomes=4,
)


def _member(folder: Path, org: str, sf: SalesforceSandbox) -> None:
    config = {
        "name": org.title(),
        "connector": {
            "kind": "salesforce_npsp",
            "login_url": sf.url,
            "client_id": sf.client_id,
            "client_secret": {"env": f"HUB_{org.upper()}_SF_SECRET"},
            "lookback_seconds": 5,
            "max_retries": 1,
            "backoff_seconds": 0.01,
        },
    }
    (folder / f"{org}.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")


class Daemon:
    """The sensor daemon's iteration over the in-process code location, on a moved clock."""

    def __init__(self, context, instance: dg.DagsterInstance) -> None:
        self.context, self.instance = context, instance
        self.now = datetime.now(UTC)
        self.log = logging.getLogger("test-sensor-daemon")
        self.queue = QueuedRunCoordinatorDaemon(interval_seconds=1)
        entry = next(iter(context.create_request_context().get_code_location_entries().values()))
        assert entry.code_location is not None, entry.load_error
        repository = next(iter(entry.code_location.get_repositories().values()))
        self.sensors = {s.name: s for s in repository.get_sensors()}
        for name, sensor in self.sensors.items():  # the other sensors are tested elsewhere
            if name not in OURS and not sensor.sensor_type.is_handled_by_asset_daemon:
                instance.stop_sensor(sensor.get_remote_origin_id(), sensor.selector_id, sensor)

    def iterate(self) -> None:
        """One sensor daemon iteration, then one of the queued-run coordinator's."""
        self.now += timedelta(seconds=10)
        with freeze_time(self.now):
            list(execute_sensor_iteration(self.context, self.log, None, None))
            list(self.queue.run_iteration(self.context))

    def cursor(self, name: str) -> str | None:
        sensor = self.sensors[name]
        state = self.instance.get_instigator_state(
            sensor.get_remote_origin_id(), sensor.selector_id
        )
        return state.instigator_data.cursor if state and state.instigator_data else None

    def set_cursor(self, name: str, cursor: str | None) -> None:
        sensor = self.sensors[name]
        state = self.instance.get_instigator_state(
            sensor.get_remote_origin_id(), sensor.selector_id
        )
        assert state is not None and state.instigator_data is not None
        self.instance.update_instigator_state(
            state.with_data(state.instigator_data._replace(cursor=cursor))
        )

    def runs(self) -> list[dg.DagsterRun]:
        return list(reversed(self.instance.get_runs(dg.RunsFilter(tags={"hub/trigger": "event"}))))


@contextmanager
def _daemon(instance: dg.DagsterInstance) -> Iterator[Daemon]:
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            module_name="tests.pipelines.in_process_definitions", working_directory=str(ROOT)
        ),
        location_name="outcomes_hub",
    )
    target = InProcessWorkspaceLoadTarget([origin])
    with create_test_daemon_workspace_context(target, instance) as context:
        yield Daemon(context, instance)


def _raw(home: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_events_lead_to_one_run_per_member_whose_outcome_is_written_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    members, home = tmp_path / "members", tmp_path / "hub"
    members.mkdir()
    monkeypatch.setenv("HUB_HOME", str(home))
    monkeypatch.setenv("HUB_MEMBERS_DIR", str(members))
    monkeypatch.delenv("HUB_EVENTS_INBOX", raising=False)
    for var in ("HUB_WAREHOUSE", "HUB_DLT_DIR", "HUB_RELEASES_DIR"):
        monkeypatch.delenv(var, raising=False)
    launcher = {
        "module": "dagster._core.launcher.sync_in_memory_run_launcher",
        "class": "SyncInMemoryRunLauncher",
    }
    inbox = open_inbox(inbox_location(home))

    def send(org: str, count: int, *changes: Change) -> None:
        stamp = time.time()
        inbox.accept_many(
            [InboundEvent(org, f"{stamp}-{n}", "salesforce_cdc", changes) for n in range(count)]
        )

    with (
        SalesforceSandbox(sizes=SIZES) as sf,
        dg.instance_for_test(overrides={"run_launcher": launcher}) as instance,
        _daemon(instance) as daemon,
    ):
        _member(members, "acme", sf)
        _member(members, "bridge", sf)
        monkeypatch.setenv("HUB_ACME_SF_SECRET", sf.client_secret)
        monkeypatch.setenv("HUB_BRIDGE_SF_SECRET", "not-the-secret")
        instance.add_dynamic_partitions(MEMBERS.name, ["acme", "bridge"])
        daemon.iterate()  # first tick: the run status sensors start watching from here

        # 1. Two members' events: two runs. Acme's is a CDC gap event: its load reads the
        # window (here its first, full one); bridge's secret is wrong: its run fails.
        send("acme", 1, Change("Contact", "gap", (sf.ids("Contact")[5],)))
        send("bridge", 1, Change("Contact", "update", (sf.ids("Contact")[0],)))
        daemon.iterate()
        runs = daemon.runs()
        assert sorted(r.tags["dagster/partition"] for r in runs) == ["acme", "bridge"]
        by_member = {r.tags["hub/member"]: r for r in runs}
        assert by_member["acme"].status == dg.DagsterRunStatus.SUCCESS
        assert by_member["bridge"].status == dg.DagsterRunStatus.FAILURE
        assert any("SystemModstamp >=" in q for q in sf.queries)  # the window
        daemon.iterate()  # the run status sensors write the outcomes back
        acme = inbox.recent("acme")
        assert [(e.state, e.run_id) for e in acme] == [("succeeded", by_member["acme"].run_id)]
        assert acme[0].detail == (
            "incremental window read: a gap event: Salesforce lost track of what changed"
        )
        bridge = inbox.recent("bridge")
        assert [(e.state, e.run_id) for e in bridge] == [("failed", by_member["bridge"].run_id)]
        assert "not-the-secret" not in str(bridge[0].detail)
        assert "Salesforce" in str(bridge[0].detail)  # the member-facing reason, not a trace

        # 2. A burst of a hundred events naming three changed contacts and a deleted one:
        # one run, reading just those records.
        contacts = sf.ids("Contact")
        named, deleted = contacts[:3], contacts[3]
        sf.update_records("Contact", named, {"LastName": "Eventname"})
        sf.delete_records("Contact", [deleted])
        asked = len(sf.queries)
        before = daemon.cursor("inbox_events")
        started = time.monotonic()
        send("acme", 99, Change("Contact", "update", tuple(named)))
        send("acme", 1, Change("Contact", "delete", (deleted,)))
        assert time.monotonic() - started < 1
        daemon.iterate()
        burst = daemon.runs()[2:]
        assert [(r.tags["dagster/partition"], r.status) for r in burst] == [
            ("acme", dg.DagsterRunStatus.SUCCESS)
        ]
        batch = burst[0].tags[BATCH_TAG]
        assert burst[0].tags["dagster/run_key"] == batch and len(inbox.batch(batch)) == 100
        queries = sf.queries[asked:]
        assert queries and all(q.endswith("ORDER BY SystemModstamp, Id") for q in queries)
        assert all("WHERE Id IN (" in q and "FROM Contact " in q for q in queries), queries
        rows = dict(_raw(home, "SELECT id, last_name FROM raw_acme.npsp__contact"))
        assert {rows[i] for i in named} == {"Eventname"}
        gone = _raw(home, f"SELECT is_deleted FROM raw_acme.npsp__contact WHERE id = '{deleted}'")
        assert gone == [(True,)]
        daemon.iterate()
        assert {(e.state, e.run_id) for e in inbox.batch(batch)} == {("succeeded", burst[0].run_id)}
        assert inbox.batch(batch)[0].detail == "4 record(s) read by id (4 Contact)"

        # 3. The tick replayed (the daemon died before storing its cursor): nothing again.
        daemon.set_cursor("inbox_events", before)
        daemon.iterate()
        assert len(daemon.runs()) == 3

        # 4. A tick that batched events but died before its run was created: the next tick
        # of the daemon creates that run, once.
        send("acme", 2, Change("Contact", "update", (named[0],)))
        evaluation = dg.build_sensor_context(
            instance=instance,
            cursor=daemon.cursor("inbox_events"),
            resources={"hub": HubResource()},
        )
        lost = inbox_events(evaluation)  # its requests never reach the daemon
        assert isinstance(lost, dg.SensorResult)
        (request,) = lost.run_requests or []
        daemon.iterate()
        daemon.iterate()
        again = [r for r in daemon.runs() if r.tags.get(BATCH_TAG) == request.run_key]
        assert [r.status for r in again] == [dg.DagsterRunStatus.SUCCESS]
        assert {e.state for e in inbox.batch(request.run_key)} == {"succeeded"}
        assert json.loads(daemon.cursor("inbox_events") or "{}")["seq"] >= 0
