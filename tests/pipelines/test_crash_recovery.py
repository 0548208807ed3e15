"""A `hub run` killed at any point leaves nothing the next run trusts, and never wedges it.

Real processes throughout: `hub run` is started as a subprocess (through
tests/pipelines/crash_harness.py, which makes it stop dead at a chosen point), killed with
SIGKILL, and the next plain `hub run` must finish on its own, saying what it recovered, with
a warehouse and a release equal to those of a clean run on the same files.
"""

from __future__ import annotations

import csv
import os
import signal
import time
from pathlib import Path

import duckdb
import pytest

from tests.pipelines.hub_cli import Forked, hub, hub_env, start
from tests.pipelines.test_hub_run import _write_network

pytestmark = pytest.mark.slow

TIMESTAMP_TYPES = ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "DATE")


def _start_paused(point: str, env: dict[str, str], marker: Path) -> Forked:
    """`hub run` in a new process that stops at ``point`` (the marker file says it got there)."""
    process = start([point, str(marker), "run"], env, module="tests.pipelines.crash_harness")
    deadline = time.monotonic() + 240
    while not marker.exists():
        if process.poll() is not None:
            out = process.output()
            pytest.fail(f"hub run ended (rc {process.returncode}) before reaching {point}:\n{out}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"hub run never reached {point}")
        time.sleep(0.1)
    marker.unlink()
    return process


def _kill(process: Forked) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def _rows(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple]:
    """The table's rows, without load ids and timestamps (they differ between any two runs)."""
    described = con.execute(f"DESCRIBE {table}").fetchall()
    keep = [
        f'"{name}"'
        for name, kind, *_ in described
        if name != "_load_id" and not any(kind.startswith(t) for t in TIMESTAMP_TYPES[:2])
    ]
    return sorted(
        con.execute(f"SELECT {', '.join(keep)} FROM {table}").fetchall(),
        key=lambda row: tuple(str(v) for v in row),
    )


def _snapshot(home: Path) -> dict[str, object]:
    """What a reader of the warehouse and the latest release sees (keys are random, so people
    are compared as groups of records)."""
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        tables = [
            f"{schema}.{name}"
            for schema, name in con.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema IN ('canonical', 'quarantine', 'published') "
                "ORDER BY 1, 2"
            ).fetchall()
        ]
        snapshot: dict[str, object] = {table: _rows(con, table) for table in tables}
        groups: dict[str, set[tuple[str, str]]] = {}
        for org_id, source_id, key in con.execute(
            "SELECT org_id, source_id, person_key FROM hub.person_link"
        ).fetchall():
            groups.setdefault(key, set()).add((org_id, source_id))
        snapshot["people"] = sorted(sorted(g) for g in groups.values())
    finally:
        con.close()
    releases = home / "releases"
    latest = releases / (releases / "LATEST").read_text(encoding="utf-8").strip()
    for name in ("outcomes_summary", "cross_org_reach"):
        with (latest / f"{name}.csv").open(encoding="utf-8") as fh:
            snapshot[f"release/{name}.csv"] = list(csv.reader(fh))
    snapshot["release/files"] = sorted(p.name for p in latest.iterdir())
    return snapshot


def nothing_left_to_recover(dagster_home: Path) -> None:
    """What a next `hub run` would recover, checked at the source: no unfinished Dagster run
    and no claimed warehouse pool slot (`hub run` recovers exactly those, and says so)."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        unfinished = instance.get_run_records(
            dg.RunsFilter(
                statuses=[
                    dg.DagsterRunStatus.NOT_STARTED,
                    dg.DagsterRunStatus.STARTING,
                    dg.DagsterRunStatus.STARTED,
                ]
            )
        )
        assert not unfinished, [r.dagster_run.tags.get("hub/stage") for r in unfinished]
        claimed = instance.event_log_storage.get_concurrency_info("warehouse").claimed_slots
        assert not claimed, claimed


def _no_partial_releases(home: Path) -> None:
    left = [p.name for p in (home / "releases").iterdir() if p.name.endswith(".partial")]
    assert not left, f"half-written release folders left behind: {left}"


def test_sigkill_at_every_stage_then_the_next_run_matches_a_clean_run(tmp_path: Path) -> None:
    members = _write_network(tmp_path)
    clean_home = tmp_path / "clean"
    clean_env = hub_env(tmp_path / "c", members, HUB_HOME=str(clean_home))
    clean = hub(["run"], clean_env)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    expected = _snapshot(clean_home)

    home = tmp_path / "crashed"
    env = hub_env(tmp_path / "k", members, HUB_HOME=str(home))
    marker = tmp_path / "reached"
    # Each run is killed at the next point; it also has to recover from the kill before it.
    for point in ("load", "mapping", "linkage", "publish"):
        _kill(_start_paused(point, env, marker))
    if (home / "releases").exists():
        partial = [p for p in (home / "releases").iterdir() if p.name.endswith(".partial")]
        assert partial, "the kill during publish should have left a staging folder"
    recovered = hub(["run"], env)
    out = recovered.stdout + recovered.stderr
    assert recovered.returncode == 0, out
    assert "recovered: run" in out and "pool slot" in out, out
    assert "removed the half-written release" in out, out
    _no_partial_releases(home)
    assert _snapshot(home) == expected
    # Nothing more to recover the time after.
    nothing_left_to_recover(Path(env["DAGSTER_HOME"]))


def test_demo_refuses_to_empty_a_folder_that_is_not_a_hub_home(tmp_path: Path) -> None:
    precious = tmp_path / "documents"
    precious.mkdir()
    (precious / "thesis.txt").write_text("keep me", encoding="utf-8")
    env = {**os.environ, "COLUMNS": "200"}
    done = hub(["demo", "--home", str(precious)], env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "refusing to delete it" in done.stdout and "thesis.txt" in done.stdout
    assert (precious / "thesis.txt").read_text(encoding="utf-8") == "keep me"
    # A folder that merely has a hub-like entry beside other things is refused too.
    (precious / "releases").mkdir()
    done = hub(["demo", "--home", str(precious)], env)
    assert done.returncode == 2 and "refusing to delete it" in done.stdout
    assert (precious / "thesis.txt").exists() and (precious / "releases").exists()


def test_demo_empties_a_home_that_an_interrupted_demo_left(tmp_path: Path) -> None:
    """A demo stopped early may leave only some of a home (its lineage log, its lock): the
    next demo must still recognise and empty it rather than refuse."""
    from pipelines.cli import _clear_demo_home

    home = tmp_path / "demo"
    (home / "openlineage").mkdir(parents=True)
    (home / "openlineage" / "events.jsonl").write_text("{}\n", encoding="utf-8")
    (home / "hub.lock").write_text("", encoding="utf-8")
    _clear_demo_home(home)
    assert sorted(p.name for p in home.iterdir()) == ["hub.lock"]
