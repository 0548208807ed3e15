"""Recovery under the real Dagster daemon: a run worker killed with SIGKILL, to a new release.

Starts `dagster-daemon run` on a temporary hub (two spreadsheet members, the network of
tests/pipelines/test_hub_run.py) with this repo's dagster.yaml, waits for the first
release, then changes a member's file. The moment the daemon's run for that change is
started, its worker process is killed with SIGKILL. Reported, from the kill:

- detected: run monitoring (HubRunLauncher's health check) marked the run failed and its
  `warehouse` pool slots were free again;
- retried: the daemon's run retry of the killed run succeeded;
- released: a new release was written (automation carried the change through canonical,
  linkage, checks and publication).

Also reported, as the baseline from the same session: the same file change without a kill,
to its release. Run from the repository root: ``.venv/bin/python benchmarks/daemon_recovery.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402

from pipelines.lib.instance import prepare_dagster_home  # noqa: E402
from pipelines.lib.run_health import worker_pid  # noqa: E402
from tests.pipelines.test_hub_run import _write_network  # noqa: E402

TIMEOUT = 600.0
DAEMON = str(Path(sys.executable).parent / "dagster-daemon")


def _wait(what: str, condition, timeout: float = TIMEOUT) -> float:
    """Poll ``condition`` until true; the time it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.2)
    return time.monotonic() - started


def _latest(home: Path) -> str | None:
    pointer = home / "releases" / "LATEST"
    return pointer.read_text(encoding="utf-8").strip() if pointer.exists() else None


def _change(data: Path, n: int) -> None:
    with (data / "alpha_people.csv").open("a", encoding="utf-8") as fh:
        fh.write(f"Z{n},Zed,Quinn{n},01/01/1990,M14 1AA,Yes\n")


def _new_started_run(instance: dg.DagsterInstance, seen: set[str]) -> dg.DagsterRun | None:
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        if run.run_id not in seen and worker_pid(instance, run) is not None:
            return run
    return None


def main() -> None:
    """Print the three recovery times and the baseline."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        members = _write_network(root)
        home, dagster_home = root / "hub", prepare_dagster_home(root / "dagster")
        env = {
            **os.environ,
            "HUB_HOME": str(home),
            "HUB_MEMBERS_DIR": str(members),
            "DAGSTER_HOME": str(dagster_home),
        }
        daemon = subprocess.Popen(
            [DAEMON, "run", "-m", "pipelines.definitions"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            first = _wait("the first release", lambda: _latest(home) is not None)
            print(f"first release written {first:.0f} s after the daemon started")
            os.environ["DAGSTER_HOME"] = str(dagster_home)
            instance = dg.DagsterInstance.get()
            # Baseline: a file change, no kill, to its release.
            time.sleep(35)  # let automation settle
            before = _latest(home)
            _change(root / "data", 1)
            baseline = _wait("the baseline release", lambda: _latest(home) != before)
            time.sleep(35)
            # The kill.
            seen = {r.run_id for r in instance.get_runs()}
            before = _latest(home)
            _change(root / "data", 2)
            found: list[dg.DagsterRun] = []

            def started() -> bool:
                run = _new_started_run(instance, seen)
                if run is not None:
                    found.append(run)
                return run is not None

            _wait("a run for the change", started)
            run = found[0]
            pid_and_time = worker_pid(instance, run)
            assert pid_and_time is not None
            os.kill(pid_and_time[0], signal.SIGKILL)
            killed = time.monotonic()
            storage = instance.event_log_storage

            def detected() -> bool:
                status = instance.get_run_by_id(run.run_id).status
                claims = [
                    c
                    for key in storage.get_concurrency_keys()
                    for c in storage.get_concurrency_info(key).claimed_slots
                    if c.run_id == run.run_id
                ]
                return status == dg.DagsterRunStatus.FAILURE and not claims

            def retried() -> bool:
                runs = instance.get_runs(
                    filters=dg.RunsFilter(tags={"dagster/parent_run_id": run.run_id})
                )
                return any(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)

            _wait("detection", detected)
            detection = time.monotonic() - killed
            _wait("the retry", retried)
            retry = time.monotonic() - killed
            _wait("the next release", lambda: _latest(home) != before)
            release = time.monotonic() - killed
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(timeout=60)
    print(f"baseline: file change -> release, no kill: {baseline:.0f} s")
    print(f"SIGKILL of the run worker -> detected (failed, slots freed): {detection:.0f} s")
    print(f"SIGKILL -> retried run succeeded: {retry:.0f} s")
    print(f"SIGKILL -> new release: {release:.0f} s")


if __name__ == "__main__":
    main()
