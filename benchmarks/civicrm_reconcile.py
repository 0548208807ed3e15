"""Benchmark: finding CiviCRM hard deletes at 200,000 contacts vs an incremental run (issue #18).

Run ``.venv/bin/python benchmarks/civicrm_reconcile.py [--contacts N]``.

The sandbox (sandboxes/civicrm.py, the ordinary one the tests use, not a slowed
one) serves synthetic contacts with e-mails, phones, addresses, cases, activities and
contributions over real HTTP on loopback from this process. Every measured step runs in its
own child process against one DuckDB file and one dlt pipeline folder, so state carries over
as it does between hub runs:

1. **full load** of every table (informational: the first run a member ever has);
2. **incremental, no reconciliation**: a realistic small change set (0.5% of contacts
   edited, half of those through an e-mail; 0.1% new contacts; 0.05% trashed; 0.5% of
   activities edited and as many added), loaded with ``reconcile=False``;
3. **the reconciliation pass alone**, after 0.01% of contacts were deleted for good: what
   the connector does on a run whose count differs (``RangeCensus.vanished``: the count,
   batched id-range counts narrowing down to the differing ranges, and the listing of
   those), with the ids held taken from the pipeline's own state;
4. **the old full listing** for comparison, on the same data: the count and the id-only
   listing of every contact (``select: ['id']``, keyset pages of ``reconcile_page_size``);
5. **incremental, defaults, with deletes**: the same change set (the deletes of 3 still
   unloaded); the run counts, narrows, lists, and clears the contacts' rows;
6. **incremental, defaults, no deletes**: the same change set again; only the count.

Printed: each step's wall time, the HTTP requests and values the sandbox answered in each,
and the pass (3) and the old listing (4) as shares of the incremental run without
reconciliation (2). The issue's target: the pass under 10%.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import run_child  # noqa: E402

STEPS = ("full", "incremental", "pass", "listing", "deletes", "count_only")


def _settings(url: str) -> Any:
    from connectors.civicrm.settings import CiviCRMSettings

    # Defaults everywhere except the look-back: the sandbox clock is not the wall clock.
    return CiviCRMSettings(site_url=url, lookback_seconds=0)


def _child(step: str, url: str, key: str, work: Path) -> dict[str, Any]:
    """One measured step in this (child) process."""
    import dlt

    from connectors.civicrm import civicrm_source, raw_pipeline

    settings = _settings(url)
    if step == "pass":
        return _pass(settings, key, work)
    if step == "listing":
        from connectors.civicrm.client import CiviCRMClient
        from connectors.civicrm.source import count_rows, entity_specs, list_ids

        spec = entity_specs(settings)["contact"]  # the very calls the connector makes
        with CiviCRMClient(settings, key) as client:
            start = time.perf_counter()
            count = count_rows(client, spec.entity, spec.where)
            counted = time.perf_counter()
            ids = list_ids(client, spec.entity, spec.where, settings.reconcile_page_size)
            listed = time.perf_counter()
        return {
            "count": count,
            "ids": len(ids),
            "count_seconds": counted - start,
            "list_seconds": listed - counted,
            "seconds": listed - start,
        }
    reconcile = False if step == "incremental" else None
    pipeline = raw_pipeline("bench", dlt.destinations.duckdb(str(work / "raw.duckdb")), work)
    start = time.perf_counter()
    info = pipeline.run(civicrm_source(settings, key, reconcile=reconcile))
    seconds = time.perf_counter() - start
    rows = pipeline.last_trace.last_normalize_info.row_counts
    import duckdb

    con = duckdb.connect(str(work / "raw.duckdb"), read_only=True)
    deleted = con.execute(
        "SELECT count(*) FROM raw_bench.civicrm__contact WHERE deleted_in_source"
    ).fetchall()
    con.close()
    return {
        "seconds": seconds,
        "rows": sum(v for k, v in rows.items() if k.startswith("civicrm__")),
        "contacts_deleted_in_source": deleted[0][0],
        "loads": len(info.loads_ids),
    }


def _pass(settings: Any, key: str, work: Path) -> dict[str, Any]:
    """The connector's own search for vanished contacts, with the ids its state holds."""
    import dlt

    from connectors.civicrm import raw_pipeline
    from connectors.civicrm.client import CiviCRMClient
    from connectors.civicrm.source import IdRanges, RangeCensus, entity_specs

    pipeline = raw_pipeline("bench", dlt.destinations.duckdb(str(work / "raw.duckdb")), work)
    resources = pipeline.state["sources"]["civicrm"]["resources"]
    before = IdRanges([list(p) for p in resources["civicrm__contact"]["known_ids"]])
    spec = entity_specs(settings)["contact"]
    census = RangeCensus(spec.entity, spec.where, settings.reconcile_page_size)
    with CiviCRMClient(settings, key) as client:
        start = time.perf_counter()
        found = census.vanished(client, before, set())
        seconds = time.perf_counter() - start
    return {
        "held": len(before),
        "count": found.count,
        "vanished": len(found.vanished),
        "requests": found.requests,
        "calls": found.calls,
        "ids": found.ids_listed,
        "seconds": seconds,
    }


def _change_set(civi: Any, rng: random.Random, contacts: int, deletes: int) -> dict[str, int]:
    """A day's worth of changes at a busy site, scaled to its size."""
    live = [i for i, r in civi.data.tables["Contact"].items() if not r.get("is_deleted")]
    edited = rng.sample(live, max(1, contacts // 200))
    emails = {r["contact_id"]: i for i, r in civi.data.tables["Email"].items()}
    for n, cid in enumerate(edited):
        if n % 2 and cid in emails:
            civi.edit("Email", emails[cid], email=f"changed{cid}.{n}@example.org")
        else:
            civi.edit("Contact", cid, last_name="Edited")
    added = [civi.add_contact() for _ in range(max(1, contacts // 1000))]
    untouched = [c for c in live if c not in set(edited)]
    trashed = rng.sample(untouched, max(1, contacts // 2000))
    for cid in trashed:
        civi.trash_contact(cid)
    activities = list(civi.data.tables["Activity"])
    for aid in rng.sample(activities, max(1, len(activities) // 200)):
        civi.edit("Activity", aid, duration=45)
    for cid in rng.sample(live, max(1, len(activities) // 200)):
        civi.add_activity(cid)
    gone = rng.sample([c for c in untouched if c not in set(trashed)], deletes)
    for cid in gone:
        civi.hard_delete("Contact", cid)
    return {
        "edited": len(edited),
        "added": len(added),
        "trashed": len(trashed),
        "activities": 2 * max(1, len(activities) // 200),
        "deleted": len(gone),
    }


def _hard_deletes(civi: Any, rng: random.Random, deletes: int) -> dict[str, int]:
    """Delete some live contacts for good, spread at random over the id range."""
    live = [i for i, r in civi.data.tables["Contact"].items() if not r.get("is_deleted")]
    gone = rng.sample(live, deletes)
    for cid in gone:
        civi.hard_delete("Contact", cid)
    return {"deleted": len(gone), "lowest": min(gone), "highest": max(gone)}


def main() -> None:
    """Start the sandbox, run each step in a child process, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        step, url, key, work = args.child
        print(json.dumps(_child(step, url, key, Path(work))))
        return

    from sandboxes.civicrm import CiviCRMSandbox

    started = time.perf_counter()
    sandbox = CiviCRMSandbox(
        contacts=args.contacts,
        seed=args.seed,
        activities_per_contact=1,
        cases_per_contact=0.2,
        contributions_per_contact=0.2,
    )
    sizes = {k: len(v) for k, v in sandbox.data.tables.items()}
    print(f"sandbox generated in {time.perf_counter() - started:.1f} s: {sizes}", flush=True)
    rng = random.Random(args.seed)
    results: dict[str, dict[str, Any]] = {}
    with sandbox as civi, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for step in STEPS:
            if step in ("incremental", "deletes", "count_only"):
                print(f"changes before {step}: {_change_set(civi, rng, args.contacts, 0)}")
            if step == "pass":
                deletes = max(1, args.contacts // 10_000)
                print(f"hard deletes before {step}: {_hard_deletes(civi, rng, deletes)}")
            requests, answers = len(civi.http_requests), len(civi.answers)
            results[step] = run_child(
                __file__, ["--child", step, civi.url, sandbox.api_key, str(work)], step
            )
            results[step]["http_requests"] = len(civi.http_requests) - requests
            results[step]["values_sent"] = sum(a[-1] for a in civi.answers[answers:])
            print(f"{step}: {json.dumps(results[step])}", flush=True)
    base = results["incremental"]["seconds"]
    passed = results["pass"]
    old = results["listing"]
    print()
    print(f"full load:                                 {results['full']['seconds']:7.2f} s")
    print(f"incremental, no reconciliation:            {base:7.2f} s")
    print(
        f"pass (count + narrowing + listing):        {passed['seconds']:7.2f} s "
        f"= {passed['seconds'] / base:.1%} of it; {passed['http_requests']} requests, "
        f"{passed['calls']} calls, {passed['ids']:,} ids listed, "
        f"{passed['vanished']} of {passed['held']:,} held ids found vanished"
    )
    print(
        f"old pass (count + full id listing):        {old['seconds']:7.2f} s "
        f"= {old['seconds'] / base:.1%} of it; {old['http_requests']} requests, "
        f"{old['ids']:,} ids listed (count {old['count_seconds']:.2f} s = "
        f"{old['count_seconds'] / base:.1%})"
    )
    print(
        f"incremental, defaults, with deletes:       {results['deletes']['seconds']:7.2f} s "
        f"({results['deletes']['contacts_deleted_in_source']} contacts deleted in source)"
    )
    print(f"incremental, defaults, no deletes:         {results['count_only']['seconds']:7.2f} s")


if __name__ == "__main__":
    main()
