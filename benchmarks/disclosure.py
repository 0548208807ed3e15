"""Disclosure control and its audit: time and memory on the demo and on a large network.

Two networks:

- ``demo``: the counts of the demo warehouse (``make demo`` writes ``.hub/demo``);
- ``large``: 1,000,000 linked people across 30 members and 40 postcode districts over four
  quarters, generated in DuckDB (district sizes and outcome codes skewed, so that small
  cells exist beside large ones), counted with the hub's own SQL.

For each: the cells, the withheld cells, the seconds to count, to control (primary and
secondary suppression with the audit-driven loop) and to audit the result again as the
blocking check does, and the peak resident memory of the process. Each network runs in a
child process so that its peak memory is its own.

Run from the repository root: ``.venv/bin/python benchmarks/disclosure.py [demo|large]``.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

THRESHOLD = 5


def _large_counts(folder: Path) -> dict:
    """Generate the large network's activity in DuckDB and count it with the hub's SQL."""
    from connectors.taxonomy import load_taxonomy
    from transforms import sql
    from transforms.canonical import ensure_schema
    from transforms.periods import quarter_bounds
    from transforms.warehouse import DuckDBWarehouse

    taxonomy = load_taxonomy()
    warehouse = DuckDBWarehouse(folder / "large.duckdb")
    codes = sorted(taxonomy.outcomes.items())  # (code, area)
    with warehouse.connect() as session:
        ensure_schema(session, "duckdb")
        session.execute("DELETE FROM hub.outcome_taxonomy")
        for code, area in codes:
            session.execute(
                "INSERT INTO hub.outcome_taxonomy VALUES (?, ?, ?)",
                [code, area, taxonomy.outcome_labels[code]],
            )
        session.execute("DELETE FROM hub.period")
        for q in range(1, 5):
            start, end = quarter_bounds(2025, q)
            session.execute("INSERT INTO hub.period VALUES (?, ?, ?)", [f"2025-Q{q}", start, end])
        code_list = ", ".join(f"('{c}', '{a}', {i})" for i, (c, a) in enumerate(codes))
        # People: district by a skewed draw (district k has weight ~ 1/(k+1)), 3% unknown;
        # served by 1 member (80%), 2 (15%) or 3 (5%); active in 1-4 quarters.
        session.execute(
            f"""
            CREATE OR REPLACE TABLE hub.activity AS
            WITH people AS (
                SELECT
                    i,
                    'p' || i AS person_key,
                    CASE WHEN hash(i, 'u') % 100 < 3 THEN 'unknown'
                         ELSE 'D' || LPAD(CAST(CAST(FLOOR(EXP(LN(41) * (hash(i, 'd') % 10000)
                              / 10000.0)) - 1 AS INTEGER) AS TEXT), 2, '0')
                    END AS area,
                    CASE WHEN hash(i, 'm') % 100 < 80 THEN 1
                         WHEN hash(i, 'm') % 100 < 95 THEN 2 ELSE 3 END AS n_members,
                    1 + CAST(hash(i, 'q') % 4 AS INTEGER) AS first_q,
                    1 + CAST(hash(i, 'l') % 3 AS INTEGER) AS quarters
                FROM range(1000000) AS t(i)
            ),
            served AS (
                SELECT p.*, m.k,
                    'org' || LPAD(CAST((hash(p.i, 'o') + m.k * 7) % 30 AS TEXT), 2, '0') AS org_id
                FROM people AS p, range(3) AS m(k)
                WHERE m.k < p.n_members
            ),
            active AS (
                SELECT s.*, 'Q' AS tag, q.q
                FROM served AS s, range(1, 5) AS q(q)
                WHERE q.q >= s.first_q AND q.q < s.first_q + s.quarters
            ),
            codes(code, outcome_area, n) AS (VALUES {code_list}),
            drawn AS (
                SELECT a.*,
                    -- skewed code: index ~ square of a uniform draw, so late codes are rare
                    CAST(FLOOR(POWER((hash(a.i, a.k, a.q, 'c') % 1000) / 1000.0, 2.5)
                         * {len(codes)}) AS INTEGER) AS code_n,
                    hash(a.i, a.k, a.q, 's') % 100 AS s
                FROM active AS a
            )
            SELECT '2025-Q' || d.q AS period, kind.kind, d.org_id, d.person_key,
                   c.outcome_area,
                   CASE WHEN kind.kind = 'outcome' THEN c.code END AS outcome_code,
                   CASE WHEN kind.kind = 'outcome' THEN
                        CASE WHEN d.s < 45 THEN 'achieved' WHEN d.s < 80 THEN 'progressing'
                             ELSE 'not_achieved' END END AS status,
                   d.area
            FROM drawn AS d
            JOIN codes AS c ON c.n = d.code_n
            CROSS JOIN (VALUES ('engagement'), ('delivery'), ('outcome')) AS kind(kind)
            WHERE kind.kind <> 'delivery' OR d.s % 2 = 0
            """
        )
        session.execute(
            "CREATE OR REPLACE TABLE hub.published_activity AS "
            + sql.render("published/published_activity", params={"threshold": str(THRESHOLD)})
        )
        tables = {
            name: session.arrow(sql.render(f"published/{name}"))
            for name in ("outcomes_summary", "cross_org_reach")
        }
        tables["organisation_summary"] = session.arrow(
            """
            SELECT org_id, 'Member ' || org_id AS name, COUNT(*) AS records_loaded,
                   CAST(hash(org_id) % 7 AS BIGINT) AS records_quarantined,
                   CAST(NULL AS TIMESTAMPTZ) AS last_refreshed, 'current' AS status,
                   CAST(NULL AS TIMESTAMPTZ) AS last_good_load,
                   CAST(NULL AS TEXT) AS held_back_reason
            FROM hub.activity GROUP BY org_id ORDER BY org_id
            """
        )
        people = session.fetchall("SELECT COUNT(DISTINCT person_key) FROM hub.activity")[0][0]
    return {"tables": tables, "people": people}


def _demo_counts() -> dict:
    from transforms.publish import compute_counts, counted_tables
    from transforms.warehouse import DuckDBWarehouse

    path = ROOT / ".hub" / "demo" / "warehouse.duckdb"
    if not path.exists():
        raise SystemExit(f"no demo warehouse at {path}: run `make demo` first")
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "demo.duckdb"
        copy.write_bytes(path.read_bytes())
        counts = compute_counts(DuckDBWarehouse(copy), threshold=THRESHOLD)
        return {"tables": counted_tables(counts), "people": None}


def run_one(network: str) -> dict:
    from transforms.disclosure import audit_release, control_release

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        counts = _demo_counts() if network == "demo" else _large_counts(Path(folder))
    count_seconds = time.perf_counter() - started
    tables = counts["tables"]

    started = time.perf_counter()
    result = control_release(tables, threshold=THRESHOLD)
    control_seconds = time.perf_counter() - started

    started = time.perf_counter()
    findings = audit_release(result.tables, tables, threshold=THRESHOLD)
    audit_seconds = time.perf_counter() - started
    assert findings.passed, findings.problems

    return {
        "network": network,
        "people": counts["people"],
        "rows": {name: t.num_rows for name, t in tables.items()},
        "cells": sum(loss.cells for loss in result.loss.values()),
        "withheld": sum(loss.withheld for loss in result.loss.values()),
        "primary": sum(loss.primary for loss in result.loss.values()),
        "secondary": sum(loss.secondary for loss in result.loss.values()),
        "rounds": result.rounds,
        "solver_runs_control": result.audit.solves,
        "solver_runs_check": findings.solves,
        "count_seconds": round(count_seconds, 1),
        "control_seconds": round(control_seconds, 1),
        "check_seconds": round(audit_seconds, 1),
        "people_withheld_share": {
            name: loss.people_withheld_share for name, loss in result.loss.items()
        },
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(run_one(sys.argv[2])))
        return
    networks = sys.argv[1:] or ["demo", "large"]
    for network in networks:
        done = subprocess.run(
            [sys.executable, __file__, "--one", network],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"{network}: failed")
        print(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
