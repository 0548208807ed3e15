"""Runs whose process died: detect them, mark them failed, give back their pool slots.

A run killed with SIGKILL (or lost with its machine) stays "started" in the Dagster instance
and keeps its slot in the ``warehouse`` concurrency pool, so every later run waits for that
slot forever. Two things find such runs:

- ``hub run`` calls :func:`recover_dead_runs` on its instance before it starts;
- the daemon's run monitoring (``run_monitoring`` in dagster.yaml) asks the run launcher,
  :class:`HubRunLauncher`, whether each started run's worker is still alive.

A run's worker is identified by its process id, from the ``hub/pid`` tag that ``hub run``
puts on its runs, or from the engine event each run worker writes when it starts ("Started
process for run (pid: N)", "Executing steps in process (pid: N)"). A process that no longer
exists, is a zombie, or started after the run did (its pid was reused) is dead. A run whose
worker cannot be identified, or that ran on another machine, is left alone: only the
daemon's run timeout can judge it.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from transforms.processes import process_alive

PID_TAG = "hub/pid"
HOST_TAG = "hub/host"
# NOT_STARTED too: ``hub run`` creates a run, then starts it; a kill in between leaves it so
# (a daemon's NOT_STARTED run has no pid yet and is left alone).
_LIVE_STATUSES = [*IN_PROGRESS_RUN_STATUSES, dg.DagsterRunStatus.NOT_STARTED]


def run_tags() -> dict[str, str]:
    """Tags that let a later process tell whether this process's runs are still alive."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


# Engine events written by a run's worker process itself (not by its step subprocesses,
# which come and go while the run is healthy): the gRPC run launcher's, and the executors'.
_WORKER_EVENTS = (
    "Started process for run",
    "Executing steps in process",
    "Executing steps using multiprocess executor",
)


def worker_pid(instance: dg.DagsterInstance, run: dg.DagsterRun) -> tuple[int, float] | None:
    """The process id of the run's worker, and a time at which that process existed (to tell
    a reused pid from it), if the run says which it is."""
    tagged = run.tags.get(PID_TAG)
    if tagged and tagged.isdigit():
        # The tag is written by the worker itself when it creates the run.
        record = instance.get_run_record_by_id(run.run_id)
        created = record.create_timestamp.timestamp() if record is not None else None
        return int(tagged), created if created is not None else float("inf")
    records = instance.get_records_for_run(
        run.run_id, of_type=DagsterEventType.ENGINE_EVENT, ascending=True, limit=200
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None or not (event.message or "").startswith(_WORKER_EVENTS):
            continue
        data = event.engine_event_data
        pid = data.metadata.get("pid") if data is not None else None
        if pid is not None and str(pid.value).isdigit():
            return int(str(pid.value)), record.event_log_entry.timestamp
    return None


def worker_status(instance: dg.DagsterInstance, run: dg.DagsterRun) -> tuple[WorkerStatus, str]:
    """RUNNING, FAILED (its process is gone) or UNKNOWN (no pid, or another machine)."""
    host = run.tags.get(HOST_TAG)
    if host and host != socket.gethostname():
        return WorkerStatus.UNKNOWN, f"the run's worker is on {host}"
    found = worker_pid(instance, run)
    if found is None:
        return WorkerStatus.UNKNOWN, "the run has not said which process runs it"
    pid, existed_at = found
    if process_alive(pid, existed_at):
        return WorkerStatus.RUNNING, f"its process (pid {pid}) is alive"
    return WorkerStatus.FAILED, f"its process (pid {pid}) is gone"


@dataclass(frozen=True)
class Recovered:
    """One run found dead and cleaned up."""

    run_id: str
    stage: str
    why: str
    slots_freed: int

    def describe(self) -> str:
        """One line for the operator."""
        slots = f", freed {self.slots_freed} pool slot(s)" if self.slots_freed else ""
        return f"run {self.run_id[:8]} ({self.stage}) had died: {self.why}; marked failed{slots}"


def _claims(instance: dg.DagsterInstance) -> dict[str, int]:
    """Pool slots claimed or waited for, per run id."""
    storage = instance.event_log_storage
    counts: dict[str, int] = {}
    for key in storage.get_concurrency_keys():
        info = storage.get_concurrency_info(key)
        for claim in info.claimed_slots:
            counts[claim.run_id] = counts.get(claim.run_id, 0) + 1
        for step in info.pending_steps:
            counts.setdefault(step.run_id, 0)
    return counts


def recover_dead_runs(instance: dg.DagsterInstance) -> list[Recovered]:
    """Mark every in-progress run whose worker died as failed and free its pool slots; also
    free slots still held by runs that have ended. Returns what was recovered."""
    recovered: list[Recovered] = []
    claims = _claims(instance)
    for record in instance.get_run_records(dg.RunsFilter(statuses=_LIVE_STATUSES)):
        run = record.dagster_run
        status, why = worker_status(instance, run)
        if status != WorkerStatus.FAILED:
            continue
        instance.report_run_failed(
            run, f"The run's process died without finishing ({why}); recovered by hub."
        )
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        stage = run.tags.get("hub/stage") or run.job_name
        recovered.append(Recovered(run.run_id, stage, why, claims.get(run.run_id, 0)))
    # Slots held by runs that are over (killed between ending and giving the slot back).
    for run_id, count in claims.items():
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            instance.event_log_storage.free_concurrency_slots_for_run(run_id)
            if run is not None and count and run_id not in {r.run_id for r in recovered}:
                stage = run.tags.get("hub/stage") or run.job_name
                recovered.append(Recovered(run_id, stage, "it had ended", count))
    return recovered


class HubRunLauncher(dg.DefaultRunLauncher):
    """Dagster's default launcher, plus a health check so run monitoring notices dead runs.

    The default launcher cannot tell whether a run's process still exists, so the daemon
    would wait for ``max_runtime_seconds`` before failing a run killed with SIGKILL; this one
    answers from the worker's process id.
    """

    @property
    def supports_check_run_worker_health(self) -> bool:
        """Yes: from the run worker's process id."""
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        """FAILED when the worker's process is gone; RUNNING otherwise (unknown included:
        a run that has not yet written its pid is given the benefit of the doubt)."""
        status, why = worker_status(self._instance, run)
        if status == WorkerStatus.FAILED:
            return CheckRunHealthResult(WorkerStatus.FAILED, why)
        return CheckRunHealthResult(WorkerStatus.RUNNING, why)


def pool_waits(instance: dg.DagsterInstance, pid: int) -> list[str]:
    """What this process's runs are waiting for: one line per pool whose slots another run
    holds while a step of ours waits (so a wait is never silent)."""
    ours = {
        record.dagster_run.run_id
        for record in instance.get_run_records(
            dg.RunsFilter(tags={PID_TAG: str(pid)}, statuses=IN_PROGRESS_RUN_STATUSES)
        )
    }
    if not ours:
        return []
    storage = instance.event_log_storage
    lines = []
    for key in sorted(storage.get_concurrency_keys()):
        info = storage.get_concurrency_info(key)
        if not any(step.run_id in ours for step in info.pending_steps):
            continue
        holders = sorted({c.run_id for c in info.claimed_slots if c.run_id not in ours})
        described = []
        for run_id in holders:
            run = instance.get_run_by_id(run_id)
            if run is None:
                continue
            what = run.tags.get("hub/stage") or run.tags.get("dagster/sensor_name") or run.job_name
            _, why = worker_status(instance, run)
            described.append(f"run {run_id[:8]} ({what}; {why})")
        if described:
            lines.append(f"waiting for the {key} pool, held by " + ", ".join(described))
    return lines
