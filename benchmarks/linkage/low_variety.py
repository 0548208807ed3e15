"""Linking one member's file with little variety in names and postcodes, within a pair budget.

    .venv/bin/python -m benchmarks.linkage.low_variety --records 1000000
    .venv/bin/python -m benchmarks.linkage.low_variety --records 100000 --compare-unlimited

Why: issue #18 — a 1M-row member file with few given names and few postcodes made the
(postcode, given name) blocking rule generate ~1.2 billion candidate pairs, and linking ran
past 12 GB. This generates such a file (seeded, synthetic: ``--given`` given names,
``--families`` family names, ``--postcodes`` postcodes in four districts, birth dates over
70 years, a tenth of the people with a placeholder e-mail and a twentieth with a
placeholder phone, and a second record for a tenth of them), loads it into a DuckDB
warehouse's ``canonical.person`` and links it with ``link_people`` — the hub's own full run,
reading and writing the warehouse — under the candidate-pair budget
(``transforms.dedup.blocking``; ``HUB_LINK_MAX_*`` from the environment).

Each stage runs in its own child process; the parent samples the child's resident memory
(``VmRSS``) every 0.2 s and reports its peak (and the child's own ``VmHWM``), and stops a
child whose memory passes ``--kill-above-mb`` (so the unlimited baseline cannot take the
machine down). ``--compare-unlimited`` links the same file once more with no budget (the hub
before the budget) for the difference; ``--runs unlimited`` makes only that run. Quality
is scored against the generator's truth (pairwise precision and recall).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.harness import peak_mb

GIVEN = (
    "Mohammed", "James", "Olivia", "Amelia", "Noah", "Isla", "Oliver", "Ava", "George", "Mia",
    "Leo", "Ivy", "Arthur", "Freya", "Muhammad", "Lily", "Harry", "Florence", "Oscar", "Emily",
    "Jack", "Sophia", "Henry", "Grace", "Charlie", "Ella", "Theo", "Zara", "Yusuf", "Aisha",
)  # fmt: skip
FAMILY_STEMS = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel",
    "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall",
    "Wood", "Jackson", "Clarke", "Khan", "Hussain", "Ali", "Ahmed", "Begum", "Shah", "Lewis",
    "Harris", "Martin", "Cooper", "King", "Lee", "Baker", "Hill", "Scott", "Moore", "Ward",
    "Turner", "Young", "Allen", "Mitchell", "Kelly", "Carter", "Morris", "Edwards", "Hughes",
    "Phillips", "Campbell", "Parker",
)  # fmt: skip
DISTRICTS = ("BD7", "BD8", "BD9", "BD3")
PLACEHOLDER_EMAIL = "noemail@example.org"
PLACEHOLDER_PHONE = "+447700900000"
ORG = "big_member"


def generate(records: int, *, given: int, families: int, postcodes: int, seed: int) -> pa.Table:
    """``records`` canonical person rows of one member, with ``true_person`` for scoring."""
    rng = np.random.default_rng(seed)
    people = round(records / 1.1)
    second = records - people
    names = np.array(GIVEN[:given])
    stems = [f"{s}{'' if i < len(FAMILY_STEMS) else i // len(FAMILY_STEMS)}" for i, s in
             enumerate(FAMILY_STEMS * (families // len(FAMILY_STEMS) + 1))][:families]  # fmt: skip
    family_names = np.array(stems)
    codes = np.array(
        [f"{DISTRICTS[i % len(DISTRICTS)]} {1 + i // len(DISTRICTS)}AB" for i in range(postcodes)]
    )
    g = rng.integers(0, given, people)
    f = rng.integers(0, families, people)
    p = rng.integers(0, postcodes, people)
    born = np.datetime64("1940-01-01") + rng.integers(0, 365 * 70, people).astype("timedelta64[D]")
    pid = np.arange(people)
    email_kind = rng.random(people)  # < .1 placeholder, < .3 none, else own
    phone_kind = rng.random(people)  # < .05 placeholder, < .4 none, else own
    # A tenth of the people have a second record: moved (another of the few postcodes) half
    # the time, without e-mail half the time.
    twice = rng.choice(people, second, replace=False)
    rows = np.concatenate([pid, twice])
    moved = np.concatenate([np.zeros(people, bool), rng.random(second) < 0.5])
    no_email = np.concatenate([np.zeros(people, bool), rng.random(second) < 0.5])
    postcode = p[rows].copy()
    postcode[moved] = rng.integers(0, postcodes, int(moved.sum()))
    email = np.where(
        email_kind[rows] < 0.1,
        PLACEHOLDER_EMAIL,
        np.char.add(
            np.char.add(np.char.lower(names[g[rows]]), "."),
            np.char.add(np.char.add(np.char.lower(family_names[f[rows]]), rows.astype(str)),
                        "@example.org"),
        ),
    )  # fmt: skip
    email_missing = (email_kind[rows] >= 0.1) & (email_kind[rows] < 0.3) | no_email
    phone = np.where(
        phone_kind[rows] < 0.05,
        PLACEHOLDER_PHONE,
        np.char.add("+447", np.char.zfill((rows * 7919 % 10**9).astype(str), 9)),
    )
    phone_missing = (phone_kind[rows] >= 0.05) & (phone_kind[rows] < 0.4)
    n = len(rows)
    return pa.table(
        {
            "org_id": pa.array([ORG] * n),
            "source_id": pa.array([f"r{i}" for i in range(n)]),
            "given_name": pa.array(names[g[rows]]),
            "family_name": pa.array(family_names[f[rows]]),
            "birth_date": pa.array(born[rows].astype("datetime64[D]"), pa.date32()),
            "email": pa.array(email, mask=email_missing),
            "phone": pa.array(phone, mask=phone_missing),
            "postcode": pa.array(codes[postcode]),
            "consent_to_share": pa.array([True] * n),
            "true_person": pa.array(rows, pa.int64()),
        }
    )


def _load(data: Path, warehouse_path: Path) -> dict[str, Any]:
    import duckdb

    from transforms.canonical import ensure_schema
    from transforms.warehouse import DuckDBWarehouse

    warehouse = DuckDBWarehouse(warehouse_path)
    with warehouse.connect() as session:
        ensure_schema(session, warehouse.dialect)
    records = pq.read_table(data).drop_columns(["true_person"])
    n = records.num_rows
    records = (
        records.append_column("source_system", pa.array(["benchmark"] * n))
        .append_column(
            "source_updated_at", pa.array([datetime(2026, 1, 1)] * n, pa.timestamp("us"))
        )
        .append_column("is_deleted", pa.array([False] * n))
        .append_column("_load_id", pa.array(["1"] * n))
    )
    con = duckdb.connect(str(warehouse_path))
    con.register("incoming", records)
    columns = ", ".join(records.column_names)
    con.execute(f"INSERT INTO canonical.person ({columns}) SELECT {columns} FROM incoming")
    con.close()
    return {"records": n}


def _link(warehouse_path: Path, unlimited: bool) -> dict[str, Any]:
    from transforms.dedup.blocking import BlockingBudget
    from transforms.linkage import link_people
    from transforms.warehouse import DuckDBWarehouse

    budget = BlockingBudget.unlimited() if unlimited else BlockingBudget.from_env()
    result = link_people(DuckDBWarehouse(warehouse_path), budget=budget, full=True)
    return {
        "records": result.records,
        "people": result.people,
        "link_s": result.seconds,
        "steps_s": result.timings,
        "model": result.model,
        "budget": {
            "max_block_pairs": budget.max_block_pairs,
            "max_rule_pairs": budget.max_rule_pairs,
            "max_pairs": budget.max_pairs,
        },
        "warnings": [w.message() for w in result.blocking_warnings],
    }


def _score(data: Path, warehouse_path: Path) -> dict[str, Any]:
    """Pairwise precision and recall of the linked people against the generator's truth."""
    import duckdb

    con = duckdb.connect(str(warehouse_path), read_only=True)
    con.register("truth", pq.read_table(data, columns=["source_id", "true_person"]))
    tp, predicted, actual = con.execute(
        """
        WITH j AS (SELECT l.person_key, t.true_person FROM hub.person_link AS l
                   JOIN truth AS t USING (source_id))
        SELECT
            (SELECT SUM(n * (n - 1) // 2) FROM
                (SELECT COUNT(*) AS n FROM j GROUP BY person_key, true_person)),
            (SELECT SUM(n * (n - 1) // 2) FROM (SELECT COUNT(*) AS n FROM j GROUP BY person_key)),
            (SELECT SUM(n * (n - 1) // 2) FROM (SELECT COUNT(*) AS n FROM j GROUP BY true_person))
        """
    ).fetchall()[0]
    con.close()
    return {
        "true_pairs": int(actual),
        "linked_pairs": int(predicted),
        "precision": round(int(tp) / max(int(predicted), 1), 4),
        "recall": round(int(tp) / max(int(actual), 1), 4),
    }


def stage(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    if args.stage == "load":
        figures = _load(args.data, args.warehouse)
    elif args.stage == "link":
        figures = _link(args.warehouse, args.unlimited)
    else:
        figures = _score(args.data, args.warehouse)
    figures["stage_s"] = round(time.perf_counter() - started, 1)
    figures["vmhwm_mb"] = round(peak_mb())
    return figures


def _child(args: argparse.Namespace, name: str, warehouse: Path, unlimited: bool = False) -> dict:
    """Run one stage in a child; sample its memory; stop it above ``--kill-above-mb``."""
    command = [
        sys.executable, "-m", "benchmarks.linkage.low_variety", "--stage", name,
        "--data", str(args.data), "--warehouse", str(warehouse),
    ] + (["--unlimited"] if unlimited else [])  # fmt: skip
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(command, stdout=out, stderr=err)
        peak = 0.0
        killed = False
        while child.poll() is None:
            peak = max(peak, _rss_mb(child.pid))
            if peak > args.kill_above_mb and not killed:
                os.kill(child.pid, signal.SIGKILL)
                killed = True
            time.sleep(0.2)
        wall = round(time.perf_counter() - started, 1)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
        out.seek(0)
        stdout = out.read().decode(errors="replace")
    if killed:
        return {"killed": True, "wall_s": wall, "sampled_peak_mb": round(peak),
                "note": f"stopped: resident memory passed {args.kill_above_mb:,} MB"}  # fmt: skip
    if child.returncode != 0:
        sys.exit(f"stage {name} failed:\n{stderr[-3000:]}")
    figures = json.loads(stdout.strip().splitlines()[-1])
    return {**figures, "wall_s": wall, "sampled_peak_mb": round(peak)}


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _pairs_per_rule(data: Path) -> dict[str, int]:
    """What each blocking rule would make on this file without a budget (a GROUP BY)."""
    import duckdb

    from transforms.dedup.blocking import count_pairs
    from transforms.dedup.link import blocking_rules
    from transforms.dedup.normalise import normalise_people

    con = duckdb.connect()
    con.register("people", normalise_people(pq.read_table(data)))
    return {rule.name: count_pairs(con, "people", rule.columns)[0] for rule in blocking_rules()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--given", type=int, default=25, help="distinct given names")
    parser.add_argument("--families", type=int, default=150, help="distinct family names")
    parser.add_argument("--postcodes", type=int, default=16, help="distinct postcodes")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--compare-unlimited", action="store_true", help="budget, then none")
    parser.add_argument(
        "--runs", default="", help="comma-separated runs to make: budget, unlimited"
    )
    parser.add_argument("--kill-above-mb", type=float, default=12_000)
    parser.add_argument("--stage", choices=("load", "link", "score"), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warehouse", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--unlimited", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        print(json.dumps(stage(args)))
        return 0
    with tempfile.TemporaryDirectory(prefix="hub-low-variety-") as tmp:
        args.data = Path(tmp) / "records.parquet"
        t0 = time.perf_counter()
        table = generate(
            args.records,
            given=args.given,
            families=args.families,
            postcodes=args.postcodes,
            seed=args.seed,
        )
        pq.write_table(table, args.data)
        del table
        print(f"generated {args.records:,} records in {time.perf_counter() - t0:.1f} s "
              f"({date.today()})", flush=True)  # fmt: skip
        print("pairs per rule without a budget:", json.dumps(_pairs_per_rule(args.data)),
              flush=True)  # fmt: skip
        names = args.runs.split(",") if args.runs else ["budget"]
        if args.compare_unlimited:
            names = ["budget", "unlimited"]
        for label in names:
            unlimited = label == "unlimited"
            warehouse = Path(tmp) / f"{label}.duckdb"
            print(f"[{label}] load:", json.dumps(_child(args, "load", warehouse)), flush=True)
            linked = _child(args, "link", warehouse, unlimited)
            print(f"[{label}] link:", json.dumps(linked, indent=1), flush=True)
            if not linked.get("killed"):
                print(f"[{label}] score:", json.dumps(_child(args, "score", warehouse)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
