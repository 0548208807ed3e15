"""Benchmark: 200,000 pmdm__ServiceDelivery__c records from the Salesforce sandbox into DuckDB.

Run ``.venv/bin/python benchmarks/salesforce_load.py [--records N]``.

The sandbox (sandboxes/salesforce_npsp.py) serves synthetic data over real HTTP on
loopback from this process. Three contenders read the same records and fields, each in its own
child process so its peak memory is its own:

- **bare**: httpx, client-credentials token, REST ``query`` following ``nextRecordsUrl``, each
  page turned into an Arrow table and inserted into DuckDB (no retries, limits, state, schema);
- **dlt REST**: the hub's connector (``load_npsp`` through ``raw_pipeline``), REST path;
- **dlt Bulk**: the same with Bulk API 2.0 (``bulk_threshold=1``).

Printed: records/s over the whole load and peak RSS (the child's ``VmHWM``, which includes the
interpreter and libraries; the level after imports is printed too). The issue's target: the
connector at least half the bare loop's speed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import peak_mb, report, run_child  # noqa: E402

FIELDS = (
    "Id, IsDeleted, CreatedDate, LastModifiedDate, SystemModstamp, Name, pmdm__Contact__c, "
    "pmdm__Service__c, pmdm__ProgramEngagement__c, pmdm__DeliveryDate__c, pmdm__Quantity__c, "
    "pmdm__AttendanceStatus__c, pmdm__AttendanceRate__c"
)


def _run_connector(url: str, secret: str, work: Path, bulk: bool) -> dict[str, float]:
    import dlt
    import duckdb

    from connectors.salesforce_npsp import (
        ClientCredentials,
        SalesforceSettings,
        load_npsp,
        raw_pipeline,
    )

    baseline = peak_mb()
    settings = SalesforceSettings(
        login_url=url,
        client_id="sandbox-consumer-key",
        objects=("pmdm__service_delivery",),
        bulk_threshold=1 if bulk else None,
        bulk_poll_seconds=0.1,
    )
    db = work / "dlt.duckdb"
    pipeline = raw_pipeline("bench", dlt.destinations.duckdb(str(db)), work)
    start = time.perf_counter()
    load_npsp(pipeline, settings, ClientCredentials(secret))
    seconds = time.perf_counter() - start
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("SELECT count(*) FROM raw_bench.pmdm__service_delivery").fetchone()[0]
    con.close()
    return {"rows": rows, "seconds": seconds, "peak_mb": peak_mb(), "base_mb": baseline}


def _run_bare(url: str, secret: str, work: Path) -> dict[str, float]:
    import duckdb
    import httpx
    import pyarrow as pa

    baseline = peak_mb()
    con = duckdb.connect(str(work / "bare.duckdb"))
    start = time.perf_counter()
    with httpx.Client(base_url=url, timeout=60) as http:
        token = http.post(
            "/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "sandbox-consumer-key",
                "client_secret": secret,
            },
        ).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        body = http.get(
            "/services/data/v62.0/query",
            params={"q": f"SELECT {FIELDS} FROM pmdm__ServiceDelivery__c"},
        ).json()
        rows, created = 0, False
        while True:
            records = [{k: v for k, v in r.items() if k != "attributes"} for r in body["records"]]
            if records:
                con.register("incoming", pa.Table.from_pylist(records))
                verb = "INSERT INTO delivery" if created else "CREATE TABLE delivery AS"
                con.execute(f"{verb} SELECT * FROM incoming")
                con.unregister("incoming")
                created, rows = True, rows + len(records)
            if body["done"]:
                break
            body = http.get(body["nextRecordsUrl"]).json()
    seconds = time.perf_counter() - start
    con.close()
    return {"rows": rows, "seconds": seconds, "peak_mb": peak_mb(), "base_mb": baseline}


def main() -> None:
    """Start the sandbox, run the contenders in child processes, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        which, url, secret, work = args.child
        if which == "bare":
            result = _run_bare(url, secret, Path(work))
        else:
            result = _run_connector(url, secret, Path(work), bulk=which == "dlt-bulk")
        print(json.dumps(result))
        return

    from sandboxes.salesforce_npsp import SalesforceSandbox, SandboxSizes

    started = time.perf_counter()
    sizes = SandboxSizes(contacts=2_000, engagements=4_000, deliveries=args.records)
    sandbox = SalesforceSandbox(sizes=sizes, api_max=1_000_000)
    with sandbox as sf, tempfile.TemporaryDirectory() as tmp:
        print(
            f"sandbox: {args.records:,} service deliveries generated in "
            f"{time.perf_counter() - started:.1f} s"
        )
        results = {}
        for which in ("bare", "dlt-rest", "dlt-bulk"):
            work = Path(tmp) / which
            work.mkdir()
            results[which] = run_child(
                __file__, ["--child", which, sf.url, sandbox.client_secret, str(work)], which
            )
    report(results)


if __name__ == "__main__":
    main()
