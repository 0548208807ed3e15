"""Benchmark: the CiviCRM connector vs a bare httpx keyset loop, on one fast APIv4 server.

Run ``.venv/bin/python benchmarks/civicrm_fast_load.py [--contacts N] [--page-size N]``.

The server (benchmarks/fast_civicrm.py) runs in its own process and answers from JSON rows
rendered before timing starts, so the time a contender takes is its own (issue #19: the
project's sandbox is slow enough to hide a client's overhead). For each of Contact, Activity
and ActivityContact, in fresh child processes, with the same select list, page size and
keyset order, hence the same pages:

- **bare**: httpx POSTs paging on ``id``; each page parsed, turned into an Arrow table and
  inserted into DuckDB (no retries, state, schema or merge);
- **bare read**: the same loop without DuckDB (parse and Arrow only);
- **hub**: the connector's resource through ``raw_pipeline`` into DuckDB (a first, full
  read: extract, normalise, load with merge), timed per step; ``hub read`` is its extract
  step alone (requests, parsing, Arrow pages, dlt's buffering), the part comparable to
  ``bare read``. Before its clock starts the hub child runs one tiny unrelated dlt load
  (``harness.warm_up``): dlt imports its extract, normaliser and loader on first use, and
  the bare loops import their libraries before their clock too.

ActivityContact is read as the connector now reads a child entity: its own keyset pager with
the parent's fields through the implicit join; the bare loop asks for the same fields.
Printed: rows/s per contender and each ``hub`` figure relative to its ``bare`` one.

``--before DIR`` (a ``git archive`` of an earlier commit) also runs that copy's hub child as
``hub@before``, interleaved with the others on the same server, for before/after figures
from one run (with each side's CPU time, steadier than wall time on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import run_child, warm_up  # noqa: E402

ENTITIES = {"contact": "Contact", "activity": "Activity", "activity_contact": "ActivityContact"}
KEY = "bench-key"


def _settings(url: str, page_size: int, key: str) -> Any:
    from connectors.civicrm.settings import CiviCRMSettings

    return CiviCRMSettings(site_url=url, page_size=page_size, entities=(key,))


def _request(url: str, page_size: int, key: str) -> tuple[list[str], list[list[Any]]]:
    """The select list and the non-id where clauses the connector asks for, on a full read."""
    from connectors.civicrm.source import _fields, entity_specs

    specs = entity_specs(_settings(url, page_size, key))
    spec = specs[key]
    fields = _fields(spec)
    if spec.parent is None:
        return list(fields), [list(w) for w in spec.where]
    from connectors.civicrm.source import _ChildJoin  # (the joined child pager, issue #19)

    join = _ChildJoin.of(spec, specs[spec.parent[0]], fields)
    return join.select, join.where


def _run_hub(url: str, key: str, page_size: int, work: Path) -> dict[str, float]:
    import dlt
    import duckdb
    import httpx  # noqa: F401 (imported before timing, as the bare loop's libraries are)
    import pyarrow  # noqa: F401

    from connectors.civicrm import civicrm_source, raw_pipeline

    warm_up(work)  # dlt's first-use imports, as the bare loop imports before its clock
    settings = _settings(url, page_size, key)
    pipeline = raw_pipeline("bench", dlt.destinations.duckdb(str(work / "hub.duckdb")), work)
    source = civicrm_source(settings, KEY, reconcile=False).with_resources(f"civicrm__{key}")
    cpu = time.process_time()
    start = time.perf_counter()
    pipeline.extract(source)
    extracted = time.perf_counter()
    pipeline.normalize()
    normalized = time.perf_counter()
    pipeline.load()
    loaded = time.perf_counter()
    con = duckdb.connect(str(work / "hub.duckdb"), read_only=True)
    rows = con.execute(f"SELECT count(*) FROM raw_bench.civicrm__{key}").fetchone()[0]
    con.close()
    return {
        "rows": rows,
        "seconds": loaded - start,
        "cpu": time.process_time() - cpu,
        "extract": extracted - start,
        "normalize": normalized - extracted,
        "load": loaded - normalized,
    }


def _run_bare(
    url: str, key: str, page_size: int, work: Path, store: bool = True
) -> dict[str, float]:
    import duckdb
    import httpx
    import pyarrow as pa

    from connectors.civicrm.client import api_url

    select, where = _request(url, page_size, key)
    endpoint = api_url(url, "clean", ENTITIES[key], "get")
    headers = {"X-Civi-Auth": f"Bearer {KEY}", "X-Requested-With": "XMLHttpRequest"}
    con = duckdb.connect(str(work / "bare.duckdb")) if store else None
    cpu = time.process_time()
    start = time.perf_counter()
    last, rows, created = 0, 0, False
    with httpx.Client(headers=headers, timeout=60) as http:
        while True:
            params = {
                "select": select,
                "where": [*where, ["id", ">", last]],
                "orderBy": {"id": "ASC"},
                "limit": page_size,
            }
            page = http.post(endpoint, data={"params": json.dumps(params)}).json()["values"]
            if page:
                table = pa.Table.from_pylist(page)
                if con is not None:
                    con.register("incoming", table)
                    if not created:
                        con.execute("CREATE TABLE t AS SELECT * FROM incoming")
                        created = True
                    else:
                        con.execute("INSERT INTO t SELECT * FROM incoming")
                    con.unregister("incoming")
                rows += len(page)
                last = page[-1]["id"]
            if len(page) < page_size:
                break
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    if con is not None:
        con.close()
    return {"rows": rows, "seconds": seconds, "cpu": cpu}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    """Start the server, run every contender for every entity in child processes, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument("--page-size", type=int, default=5_000)
    parser.add_argument("--entities", default=",".join(ENTITIES))
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per contender, interleaved; the fastest counts"
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="a copy of an earlier commit (git archive): its connector runs too, as "
        "'hub@before', interleaved with this one on the same server",
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        which, url, key, work = args.child
        if which == "hub":
            result = _run_hub(url, key, args.page_size, Path(work))
        else:
            result = _run_bare(url, key, args.page_size, Path(work), store=which == "bare")
        print(json.dumps(result))
        return

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    keys = args.entities.split(",")
    warm = [[ENTITIES[k], _request(url, args.page_size, k)[0]] for k in keys]
    started = time.perf_counter()
    server = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("fast_civicrm.py")),
            "--port",
            str(port),
            "--contacts",
            str(args.contacts),
            "--warm",
            json.dumps(warm),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            sys.exit("the fast server did not start")
        print(
            f"fast server: {args.contacts:,} contacts, activities and their roles rendered in "
            f"{time.perf_counter() - started:.1f} s; page size {args.page_size:,}; "
            f"{os.cpu_count()} CPUs"
        )
        print(
            f"{'':22} {'rows':>9} {'seconds':>8} {'rows/s':>9} {'CPU s':>6}  hub steps (s); "
            f"best of {args.repeat}"
        )
        for key in keys:
            runs: dict[str, list[dict[str, Any]]] = {"bare read": [], "bare": [], "hub": []}
            if args.before is not None:
                runs["hub@before"] = []
            with tempfile.TemporaryDirectory() as tmp:
                for attempt in range(args.repeat):
                    for which in runs:
                        work = Path(tmp) / f"{which.replace(' ', '_').replace('@', '_')}_{attempt}"
                        work.mkdir()
                        mode = {"bare read": "read", "bare": "bare"}.get(which, "hub")
                        child = ["--page-size", str(args.page_size), "--child", mode, url, key]
                        script = __file__
                        if which == "hub@before":
                            script = str(args.before / "benchmarks" / Path(__file__).name)
                        runs[which].append(run_child(script, [*child, str(work)], which))
            results = {which: min(rs, key=lambda r: r["seconds"]) for which, rs in runs.items()}
            hub = results["hub"]
            results["hub read"] = {
                "rows": hub["rows"],
                "seconds": min(r["extract"] for r in runs["hub"]),
                "cpu": float("nan"),
            }
            for which, r in results.items():
                steps = (
                    f"  extract {r['extract']:.2f}, normalise {r['normalize']:.2f}, "
                    f"load {r['load']:.2f}"
                    if which.startswith("hub") and "extract" in r
                    else ""
                )
                label = f"{ENTITIES[key]} {which}"
                print(
                    f"{label:22} {r['rows']:>9,} {r['seconds']:>8.2f} "
                    f"{r['rows'] / r['seconds']:>9,.0f} {r['cpu']:>6.2f}{steps}"
                )
            ratio = results["bare"]["seconds"] / hub["seconds"]
            read_ratio = results["bare read"]["seconds"] / results["hub read"]["seconds"]
            print(
                f"{ENTITIES[key]}: hub / bare speed {ratio:.2f} end to end, "
                f"{read_ratio:.2f} reading (target >= 0.8)",
                flush=True,
            )
            if "hub@before" in results:
                before = results["hub@before"]
                print(
                    f"{ENTITIES[key]}: hub@before / bare speed "
                    f"{results['bare']['seconds'] / before['seconds']:.2f} end to end; CPU "
                    f"hub {hub['cpu']:.2f} s, hub@before {before['cpu']:.2f} s, "
                    f"bare {results['bare']['cpu']:.2f} s",
                    flush=True,
                )
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
