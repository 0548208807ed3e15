"""Shared plumbing for the connector benchmarks: child processes, peak memory, the table.

Each contender runs in a fresh child process so its peak memory is its own; the child prints
one JSON line ``{"rows", "seconds", "peak_mb", "base_mb"}`` as its last line of output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# As production runs dlt (pipelines/__init__.py): without this, dlt's anonymous telemetry
# sends an event per step from a background thread, inside the connectors' clocks only.
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")


def peak_mb() -> float:
    """This process's peak resident set size in MB.

    ``VmHWM`` from /proc is reset at exec; ``ru_maxrss`` would carry the parent's high-water
    mark (the sandbox's data) into the child.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_child(script: str, args: list[str], label: str) -> dict[str, Any]:
    """Run ``script`` with ``args`` in a fresh interpreter; return its JSON result."""
    done = subprocess.run(
        [sys.executable, script, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"{label} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(results: dict[str, dict[str, Any]], baseline: str = "bare") -> None:
    """Print records/s and memory per contender, and each one's speed relative to the bare
    loop (the issues' target is at least 0.5)."""
    width = max(len(k) for k in results) + 1
    print(
        f"{'':{width}} {'records':>9} {'seconds':>8} {'records/s':>10} {'peak RSS':>9} "
        f"{'imports':>8}"
    )
    for which, r in results.items():
        print(
            f"{which:{width}} {r['rows']:>9,} {r['seconds']:>8.2f} "
            f"{r['rows'] / r['seconds']:>10,.0f} {r['peak_mb']:>7.0f}MB {r['base_mb']:>6.0f}MB"
        )
    bare = results[baseline]["rows"] / results[baseline]["seconds"]
    for which, r in results.items():
        if which != baseline:
            speed = r["rows"] / r["seconds"]
            print(f"{which} speed / {baseline} speed: {speed / bare:.2f} (target >= 0.5)")


def warm_up(work: Path) -> None:
    """One tiny dlt load (one Arrow row, merge, Parquet, DuckDB) before the clock starts.

    dlt imports its normaliser, Parquet writer and DuckDB loader on first use (about a second
    on this machine); the bare loops import their libraries before their clock starts too,
    and a process loading several members pays this once. Nothing of the connector runs.
    """
    import dlt
    import pyarrow as pa

    table = pa.table({"id": ["a"], "n": [1]})
    pipeline = dlt.pipeline(
        "warm_up",
        destination=dlt.destinations.duckdb(str(work / "warm_up.duckdb")),
        pipelines_dir=str(work / "warm"),
        dataset_name="warm_up_data",
    )
    pipeline.run(
        dlt.resource(
            [table], name="t", write_disposition="merge", primary_key="id", file_format="parquet"
        )
    )
