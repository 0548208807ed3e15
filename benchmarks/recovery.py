"""How long the hub takes to recover from a SIGKILL, on the demo's five members.

For each point (during a load, a mapping, linkage and publish) a `hub run` on the demo
members is stopped dead there (tests/pipelines/crash_harness.py) and killed with SIGKILL;
then a plain `hub run` is timed from its start to its exit, with the moment it printed
"recovered:" (detection: the dead run failed, its pool slots freed). Each killed run is the
first on a fresh home, so every stage has work to do. The baselines, measured in the same
session: a clean first run (all the work) and a second run with nothing changed (the least a
run does).

Run from the repository root: ``.venv/bin/python benchmarks/recovery.py``.
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

from pipelines.lib.demo import demo_sandboxes  # noqa: E402
from pipelines.lib.members import registry  # noqa: E402

POINTS = ("load", "mapping", "linkage", "publish")


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "HUB_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    env["HUB_MEMBERS_DIR"] = str(ROOT / "members")
    env["COLUMNS"] = "200"
    for var in ("HUB_WAREHOUSE", "HUB_DLT_DIR", "HUB_RELEASES_DIR"):
        env.pop(var, None)
    return env


def _timed_run(env: dict[str, str]) -> tuple[float, float | None]:
    """Seconds to exit, and to the first "recovered:" line (None if nothing was recovered)."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "run"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    detected = None
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if detected is None and "recovered:" in line:
            detected = time.monotonic() - started
    process.wait()
    total = time.monotonic() - started
    if process.returncode != 0:
        sys.exit(f"hub run failed (rc {process.returncode}):\n{''.join(lines)[-3000:]}")
    return total, detected


def _kill_at(point: str, env: dict[str, str], marker: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.pipelines.crash_harness", point, str(marker), "run"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not marker.exists():
        if process.poll() is not None:
            sys.exit(f"hub run ended before reaching {point}")
        time.sleep(0.05)
    marker.unlink()
    process.send_signal(signal.SIGKILL)
    process.wait()


def main() -> None:
    """Print one row per point and the baseline."""
    os.environ["HUB_MEMBERS_DIR"] = str(ROOT / "members")
    rows: list[tuple[str, float, float | None]] = []
    with tempfile.TemporaryDirectory() as tmp, demo_sandboxes(registry().members):
        root = Path(tmp)
        base_env = _env(root / "baseline")
        rows.append(("baseline: first run (loads everything)", *_timed_run(base_env)))
        rows.append(("baseline: second run (nothing changed)", *_timed_run(base_env)))
        for point in POINTS:
            env = _env(root / point)
            # The first run on a fresh home is killed: every stage has work to do there.
            _kill_at(point, env, root / f"{point}.marker")
            rows.append((f"after SIGKILL during {point}", *_timed_run(env)))
    print(f"{'':42} {'detected (s)':>13} {'next run done (s)':>18}")
    for label, total, detected in rows:
        shown = f"{detected:.1f}" if detected is not None else "-"
        print(f"{label:42} {shown:>13} {total:>18.1f}")


if __name__ == "__main__":
    main()
