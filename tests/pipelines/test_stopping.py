"""Stopping `hub run`: a second run is refused while one holds the home, and Ctrl-C or SIGTERM
stops a run within seconds, leaving nothing the next run has to recover.

Real processes: `hub run` is started through tests/pipelines/crash_harness.py, which makes it
stand still inside a stage, and signalled there.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun

from pipelines.lib.instance import prepare_dagster_home
from pipelines.lib.run_health import run_tags
from tests.pipelines.hub_cli import hub, hub_env, start
from tests.pipelines.test_crash_recovery import (
    _no_partial_releases,
    _start_paused,
    nothing_left_to_recover,
)
from tests.pipelines.test_hub_run import _write_network

pytestmark = pytest.mark.slow


def test_a_second_run_is_refused_and_sigterm_stops_a_run_within_seconds(tmp_path: Path) -> None:
    members = _write_network(tmp_path)
    home = tmp_path / "hub"
    env = hub_env(tmp_path, members)
    marker = tmp_path / "reached"
    first = _start_paused("mapping", env, marker)
    try:
        second = hub(["run"], env)
        assert second.returncode == 4, second.stdout + second.stderr
        said = " ".join(second.stdout.split())
        assert f"another hub run (pid {first.pid}, started" in said, said
        assert str(home) in said.replace(" ", "") or "is using" in said
        waited = hub(["run", "--wait", "1"], env)
        assert waited.returncode == 4 and "waited 1 s" in " ".join(waited.stdout.split())
        started = time.monotonic()
        first.send_signal(signal.SIGTERM)
        out, _ = first.communicate(timeout=30)
        took = time.monotonic() - started
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 128 + signal.SIGTERM, out
    assert took < 15, f"SIGTERM took {took:.1f} s to stop hub run"
    assert "SIGTERM: stopping" in out, out
    # The stopped run marked its own runs failed: nothing is left for the next to recover,
    # and the next run completes on its own.
    after = hub(["run"], env)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "recovered: run" not in after.stdout, after.stdout
    _no_partial_releases(home)


def test_a_second_ctrl_c_stops_a_run_at_once(tmp_path: Path) -> None:
    members = _write_network(tmp_path)
    env = hub_env(tmp_path, members)
    marker = tmp_path / "reached"
    first = _start_paused("load", env, marker)
    try:
        first.send_signal(signal.SIGINT)
        first.send_signal(signal.SIGINT)  # a second Ctrl-C: stop now
        out, _ = first.communicate(timeout=20)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 128 + signal.SIGINT, out
    # It failed its own runs and freed their slots on the way out: nothing for the next run
    # to recover (that the next run then completes is shown after SIGTERM above).
    nothing_left_to_recover(Path(env["DAGSTER_HOME"]))


class PoolHolder:
    """Another live process's run (the daemon's, say) holding the warehouse pool's one slot,
    and a `hub run` started behind it, read until it says who it waits for."""

    def __init__(self, tmp_path: Path) -> None:
        self.holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        home = prepare_dagster_home(tmp_path / "dagster")
        self.instance = dg.DagsterInstance.from_config(str(home))
        self.run = self.instance.add_run(
            DagsterRun(
                job_name="__ASSET_JOB",
                run_id=str(uuid.uuid4()),
                status=dg.DagsterRunStatus.STARTED,
                tags={**run_tags(), "hub/pid": str(self.holder.pid), "hub/stage": "someone else"},
            )
        )
        storage = self.instance.event_log_storage
        storage.set_concurrency_slots("warehouse", 1)
        storage.claim_concurrency_slot("warehouse", self.run.run_id, "step")
        self.waiting = start(["run"], hub_env(tmp_path, _write_network(tmp_path)))

    def wait_until_it_says_who(self) -> str:
        """All it has said, once it has said (a whole line) which run it waits for."""
        deadline = time.monotonic() + 120
        phrase = "waiting for the warehouse pool"
        while phrase not in (said := self.waiting.output()) or "\n" not in said.split(phrase)[1]:
            assert self.waiting.poll() is None, said
            assert time.monotonic() < deadline, said
            time.sleep(0.1)
        return " ".join(said.split())

    def close(self) -> None:
        for process in (self.holder, self.waiting):
            if process.poll() is None:
                process.kill()
            process.wait()


@pytest.fixture
def pool_holder(tmp_path: Path) -> Iterator[PoolHolder]:
    holding = PoolHolder(tmp_path)
    try:
        yield holding
    finally:
        holding.close()


def test_a_run_waiting_for_the_pool_says_who_holds_it_and_goes_on_when_the_holder_dies(
    pool_holder: PoolHolder,
) -> None:
    """`hub run` names the run holding the slot instead of waiting in silence, and when that
    run's process dies, frees the slot and finishes."""
    run, holder = pool_holder.run, pool_holder.holder
    said = pool_holder.wait_until_it_says_who()
    assert f"run {run.run_id[:8]} (someone else; its process (pid {holder.pid}) is alive)" in said
    holder.kill()
    holder.wait()
    out, _ = pool_holder.waiting.communicate(timeout=240)
    assert pool_holder.waiting.returncode == 0, out
    assert f"recovered: run {run.run_id[:8]} (someone else) had died" in out, out
    assert pool_holder.instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE


def test_sigterm_stops_a_run_that_waits_for_the_pool(pool_holder: PoolHolder) -> None:
    """Dagster's in-process executor waits for a slot without looking at signals; `hub run`
    still stops within seconds, fails its own run and leaves the live holder's alone."""
    pool_holder.wait_until_it_says_who()
    started = time.monotonic()
    pool_holder.waiting.send_signal(signal.SIGTERM)
    out, _ = pool_holder.waiting.communicate(timeout=30)
    took = time.monotonic() - started
    assert pool_holder.waiting.returncode == 128 + signal.SIGTERM, out
    assert took < 15, f"SIGTERM took {took:.1f} s"
    instance = pool_holder.instance
    assert instance.get_run_by_id(pool_holder.run.run_id).status == dg.DagsterRunStatus.STARTED
    ours = instance.get_runs(filters=dg.RunsFilter(tags={"hub/pid": str(pool_holder.waiting.pid)}))
    assert ours and all(r.status == dg.DagsterRunStatus.FAILURE for r in ours)
