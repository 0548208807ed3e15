"""Processes take turns on the DuckDB warehouse instead of failing with "Could not set lock"."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from transforms.warehouse import DuckDBWarehouse, WarehouseBusyError

HOLD = """
import sys, time
from transforms.warehouse import DuckDBWarehouse
warehouse = DuckDBWarehouse(sys.argv[1])
with warehouse.connect() as session:
    session.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
    session.execute("INSERT INTO t VALUES (1)")
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold(path: Path, seconds: float) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "holding"
    return process


def test_a_second_process_waits_for_the_first_then_sees_its_writes(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    holder = _hold(path, 1.5)
    started = time.monotonic()
    with DuckDBWarehouse(path).connect(read_only=True) as session:
        rows = session.fetchall("SELECT COUNT(*) FROM t")
    assert time.monotonic() - started >= 1.0  # it waited, rather than failing at once
    assert rows == [(1,)]
    holder.wait(timeout=30)


def test_a_process_that_keeps_it_too_long_gets_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "warehouse.duckdb"
    holder = _hold(path, 10)
    monkeypatch.setenv("HUB_WAREHOUSE_LOCK_SECONDS", "0.5")
    try:
        with (
            pytest.raises(WarehouseBusyError, match="in use by another hub process"),
            DuckDBWarehouse(path).connect(),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()
    # The kernel frees the lock of a killed process: the next writer goes straight in, and
    # finds nothing of the killed process's unfinished transaction.
    with DuckDBWarehouse(path).connect() as session:
        assert not session.table_exists("main", "t")


def test_the_lock_is_reentrant_within_a_process(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    with warehouse.exclusive(), warehouse.connect() as session:
        session.execute("CREATE TABLE t AS SELECT 1 AS n")
        assert session.fetchall("SELECT n FROM t") == [(1,)]
