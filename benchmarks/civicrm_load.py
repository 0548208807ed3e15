"""Benchmark: 200,000 CiviCRM activities from the local sandbox into DuckDB, dlt vs a bare loop.

Run ``.venv/bin/python benchmarks/civicrm_load.py [--activities N] [--page-size N]``.

The sandbox (sandboxes/civicrm.py) serves synthetic data over real HTTP on loopback
from this process; each contender runs in its own child process so its peak memory is its
own, and both read the same activities with the same fields, page size and keyset order:

- **dlt**: the hub's connector, ``civicrm_source(...).with_resources("civicrm__activity")``
  through ``raw_pipeline`` into a DuckDB file (extract, normalise, load, state);
- **bare**: httpx POSTs (form-encoded ``params``) paging on ``id``, each page turned into an
  Arrow table and inserted into DuckDB. No retries, no state, no schema handling.

Printed: records/s (records / wall seconds of the load) and peak RSS (``VmHWM`` of the child
process from /proc — ``ru_maxrss`` would carry over the parent's high-water mark across exec —
which includes the interpreter and libraries; the level after imports is printed too). The
issue's target: dlt at least half the bare loop's speed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import peak_mb, report, run_child  # noqa: E402

if TYPE_CHECKING:
    from connectors.civicrm.settings import CiviCRMSettings


def _settings(url: str, page_size: int) -> CiviCRMSettings:
    from connectors.civicrm.settings import CiviCRMSettings

    return CiviCRMSettings(site_url=url, page_size=page_size, entities=("activity",))


def _run_dlt(url: str, key: str, page_size: int, work: Path) -> dict[str, float]:
    import dlt
    import duckdb

    from connectors.civicrm import civicrm_source, raw_pipeline

    baseline = peak_mb()
    settings = _settings(url, page_size)
    pipeline = raw_pipeline("bench", dlt.destinations.duckdb(str(work / "dlt.duckdb")), work)
    start = time.perf_counter()
    pipeline.run(civicrm_source(settings, key, reconcile=False).with_resources("civicrm__activity"))
    seconds = time.perf_counter() - start
    con = duckdb.connect(str(work / "dlt.duckdb"), read_only=True)
    rows = con.execute("SELECT count(*) FROM raw_bench.civicrm__activity").fetchone()[0]
    con.close()
    return {"rows": rows, "seconds": seconds, "peak_mb": peak_mb(), "base_mb": baseline}


def _run_bare(url: str, key: str, page_size: int, work: Path) -> dict[str, float]:
    import duckdb
    import httpx
    import pyarrow as pa

    from connectors.civicrm.client import api_url
    from connectors.civicrm.source import entity_specs  # the same field list the connector asks for

    baseline = peak_mb()
    fields = list(entity_specs(_settings(url, page_size))["activity"].fields)
    endpoint = api_url(url, "clean", "Activity", "get")
    headers = {"X-Civi-Auth": f"Bearer {key}", "X-Requested-With": "XMLHttpRequest"}
    con = duckdb.connect(str(work / "bare.duckdb"))
    start = time.perf_counter()
    last, rows, created = 0, 0, False
    with httpx.Client(headers=headers, timeout=60) as http:
        while True:
            params = {
                "select": fields,
                "where": [["id", ">", last]],
                "orderBy": {"id": "ASC"},
                "limit": page_size,
            }
            page = http.post(endpoint, data={"params": json.dumps(params)}).json()["values"]
            if not page:
                break
            con.register("incoming", pa.Table.from_pylist(page))
            if not created:
                con.execute("CREATE TABLE activity AS SELECT * FROM incoming")
                created = True
            else:
                con.execute("INSERT INTO activity SELECT * FROM incoming")
            con.unregister("incoming")
            rows += len(page)
            last = page[-1]["id"]
    seconds = time.perf_counter() - start
    con.close()
    return {"rows": rows, "seconds": seconds, "peak_mb": peak_mb(), "base_mb": baseline}


def main() -> None:
    """Start the sandbox, run both contenders in child processes, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--activities", type=int, default=200_000)
    parser.add_argument("--page-size", type=int, default=5_000)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        which, url, key, work = args.child
        run = _run_dlt if which == "dlt" else _run_bare
        print(json.dumps(run(url, key, args.page_size, Path(work))))
        return

    from sandboxes.civicrm import CiviCRMSandbox

    per_contact = 10
    started = time.perf_counter()
    sandbox = CiviCRMSandbox(
        contacts=args.activities // per_contact,
        activities_per_contact=per_contact,
        cases_per_contact=0,
        contributions_per_contact=0,
    )
    with sandbox as civi, tempfile.TemporaryDirectory() as tmp:
        print(
            f"sandbox: {args.activities:,} activities generated in "
            f"{time.perf_counter() - started:.1f} s; page size {args.page_size:,}"
        )
        results = {}
        for which in ("bare", "dlt"):
            work = Path(tmp) / which
            work.mkdir()
            results[which] = run_child(
                __file__,
                [
                    "--page-size",
                    str(args.page_size),
                    "--child",
                    which,
                    civi.url,
                    sandbox.api_key,
                    str(work),
                ],
                which,
            )
    report(results)


if __name__ == "__main__":
    main()
