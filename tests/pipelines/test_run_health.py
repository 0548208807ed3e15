"""Dead runs are found by their worker's pid, failed, and their pool slots given back; every
step that opens the warehouse is in the warehouse pool; one hub process per home."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.launcher import WorkerStatus
from dagster._core.storage.dagster_run import DagsterRun

from pipelines.definitions import defs
from pipelines.lib.home_lock import HomeBusyError, hold_home
from pipelines.lib.run_health import (
    HOST_TAG,
    PID_TAG,
    HubRunLauncher,
    recover_dead_runs,
    run_tags,
    worker_status,
)
from transforms.processes import process_alive


def _dead_pid() -> int:
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)


def _started_run(instance: dg.DagsterInstance, tags: dict[str, str]) -> DagsterRun:
    run = DagsterRun(
        job_name="__ASSET_JOB",
        run_id=str(uuid.uuid4()),
        status=dg.DagsterRunStatus.STARTED,
        tags={"hub/stage": "load alpha", **tags},
    )
    return instance.add_run(run)


def test_a_zombie_or_missing_process_is_dead_and_this_one_is_alive() -> None:
    assert process_alive(os.getpid())
    assert not process_alive(_dead_pid())
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        pass  # exited, not yet reaped: what a SIGKILLed child looks like to its parent
    assert not process_alive(zombie.pid)
    zombie.wait()
    # A live pid that started after the run did is a reused pid, not the run's worker.
    assert not process_alive(os.getpid(), not_started_after=0.0)


def test_recovery_fails_dead_runs_frees_their_slots_and_leaves_live_ones() -> None:
    with dg.instance_for_test() as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("warehouse", 1)
        dead = _started_run(instance, {PID_TAG: str(_dead_pid()), HOST_TAG: run_tags()[HOST_TAG]})
        storage.claim_concurrency_slot("warehouse", dead.run_id, "spreadsheet_raw")
        live = _started_run(instance, run_tags())
        elsewhere = _started_run(instance, {PID_TAG: "1", HOST_TAG: "another-machine"})
        assert storage.get_concurrency_info("warehouse").claimed_slots

        recovered = recover_dead_runs(instance)

        assert [r.run_id for r in recovered] == [dead.run_id]
        assert recovered[0].slots_freed == 1 and "load alpha" in recovered[0].describe()
        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(live.run_id).status == dg.DagsterRunStatus.STARTED
        assert instance.get_run_by_id(elsewhere.run_id).status == dg.DagsterRunStatus.STARTED
        assert not storage.get_concurrency_info("warehouse").claimed_slots
        assert recover_dead_runs(instance) == []


def test_slots_kept_by_a_finished_run_are_freed() -> None:
    with dg.instance_for_test() as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots("warehouse", 1)
        run = _started_run(instance, run_tags())
        storage.claim_concurrency_slot("warehouse", run.run_id, "canonical_model")
        instance.report_run_failed(run, "ended without freeing its slot")
        recovered = recover_dead_runs(instance)
        assert [(r.run_id, r.slots_freed) for r in recovered] == [(run.run_id, 1)]
        assert not storage.get_concurrency_info("warehouse").claimed_slots


def test_the_daemons_launcher_reports_dead_workers_from_their_engine_events() -> None:
    with dg.instance_for_test(
        overrides={
            "run_launcher": {"module": "pipelines.lib.run_health", "class": "HubRunLauncher"}
        }
    ) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, HubRunLauncher) and launcher.supports_check_run_worker_health
        run = _started_run(instance, {})
        # No pid yet (just launched): given the benefit of the doubt.
        assert launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
        from dagster._core.events import EngineEventData

        # A step's subprocess ends while the run goes on: its pid says nothing of the run.
        instance.report_engine_event(
            "Started process for run (pid: 1).", run, EngineEventData.in_process(os.getpid())
        )
        instance.report_engine_event(
            "Executing step in subprocess.", run, EngineEventData.in_process(_dead_pid())
        )
        assert worker_status(instance, run)[0] == WorkerStatus.RUNNING
        run = _started_run(instance, {})
        instance.report_engine_event(
            "Started process for run (pid: 2).", run, EngineEventData.in_process(_dead_pid())
        )
        assert worker_status(instance, run)[0] == WorkerStatus.FAILED
        assert launcher.check_run_worker_health(run).status == WorkerStatus.FAILED


def test_every_step_that_opens_the_warehouse_is_in_the_warehouse_pool() -> None:
    definitions = defs()
    steps = [*(definitions.assets or []), *(definitions.asset_checks or [])]
    for step in steps:
        if "hub" in step.required_resource_keys:
            assert step.op.pool == "warehouse", step.op.name


def test_one_hub_process_per_home(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from pipelines.lib.home_lock import hold_home\n"
            "with hold_home(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        busy = rf"another hub run \(pid {holder.pid}, started"
        with pytest.raises(HomeBusyError, match=busy), hold_home(tmp_path):
            pass
        waited = r"waited 0\.3 s"
        with pytest.raises(HomeBusyError, match=waited), hold_home(tmp_path, wait_seconds=0.3):
            pass
    finally:
        holder.kill()
        holder.wait()
    # Killed: the kernel let go of the lock, whatever the owner file still says.
    with hold_home(tmp_path):
        assert (tmp_path / "hub.lock.json").exists()
    assert not (tmp_path / "hub.lock.json").exists()


def test_a_run_launched_long_after_it_was_queued_is_alive() -> None:
    """The daemon queues a run, then launches its worker later: the worker started after the
    run was created, and is still the run's own (not a reused pid)."""
    import time

    from dagster._core.events import EngineEventData

    with dg.instance_for_test() as instance:
        run = _started_run(instance, {})
        time.sleep(5.5)  # longer than the pid-reuse slack
        worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            instance.report_engine_event(
                f"Started process for run (pid: {worker.pid}).",
                run,
                EngineEventData.in_process(worker.pid),
            )
            assert worker_status(instance, run)[0] == WorkerStatus.RUNNING
            assert recover_dead_runs(instance) == []
        finally:
            worker.kill()
            worker.wait()
        assert worker_status(instance, run)[0] == WorkerStatus.FAILED
