"""Incremental linking at scale: new and deleted records against an already linked network.

    .venv/bin/python -m benchmarks.linkage.generate --people 1000000 --orgs 30 --out /tmp/lb1m
    .venv/bin/python -m benchmarks.linkage.incremental --data /tmp/lb1m --new 10000

Builds a DuckDB warehouse whose canonical.person holds the generated records minus ``--new``
of them (a seeded random choice; phones in E.164, as the loaders store them), links it in
full with ``link_people``, then adds the held back records and links again (incremental:
only they and the people they touch are re-linked), then flags ``--delete`` records deleted
and links again. Each stage runs in its own child process, so its time and peak memory
(``VmHWM``) are its own and include reading and writing the warehouse. The network after
the additions is scored against the generator's truth (``score.py``); ``--compare-full``
also links that same state in full, for the difference incremental linking makes to quality.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.harness import peak_mb

STAGES = ("load_base", "link", "add_new", "delete", "score")


def _canonical(records: pa.Table) -> pa.Table:
    """Generated records in canonical.person's shape.

    Phones as the loaders store them: E.164 (``connectors.values.parse_phone`` with the
    member's region, on load), here through the linker's own normaliser, which follows the
    same rules; unreadable numbers become null, as a load would leave them.
    """
    from transforms.dedup.normalise import normalise_people

    n = records.num_rows
    if n:
        phones = normalise_people(records)["phone"]
        records = records.set_column(records.schema.get_field_index("phone"), "phone", phones)
    return (
        records.append_column("source_system", pa.array(["benchmark"] * n))
        .append_column(
            "source_updated_at", pa.array([datetime(2026, 1, 1)] * n, pa.timestamp("us"))
        )
        .append_column("is_deleted", pa.array([False] * n))
        .append_column("_load_id", pa.array(["1"] * n))
    )


def _insert(con: duckdb.DuckDBPyConnection, records: pa.Table) -> None:
    con.register("incoming", _canonical(records))
    columns = ", ".join(_canonical(records.slice(0, 0)).column_names)
    con.execute(f"INSERT INTO canonical.person ({columns}) SELECT {columns} FROM incoming")
    con.unregister("incoming")


def _split(data: Path, new: int, seed: int) -> tuple[pa.Table, pa.Table]:
    """(base, held back): ``new`` records chosen by a seeded hash of their ids."""
    con = duckdb.connect()
    con.register("records", pq.read_table(data / "records.parquet"))
    order = f"ORDER BY hash(org_id || '|' || source_id || '#{seed}'), org_id, source_id"
    held = con.sql(f"SELECT * FROM records {order} LIMIT {new}").to_arrow_table()
    base = con.sql(f"SELECT * FROM records {order} OFFSET {new}").to_arrow_table()
    return base, held


def stage(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one stage in this process; return its figures."""
    from transforms.canonical import ensure_schema
    from transforms.linkage import link_people
    from transforms.warehouse import DuckDBWarehouse

    warehouse = DuckDBWarehouse(args.warehouse)
    started = time.perf_counter()
    figures: dict[str, Any] = {}
    if name == "load_base":
        base, _ = _split(args.data, args.new, args.seed)
        with warehouse.connect() as session:
            ensure_schema(session, warehouse.dialect)
        con = duckdb.connect(str(args.warehouse))
        _insert(con, base)
        con.close()
        figures["records"] = base.num_rows
    elif name == "add_new":
        _, held = _split(args.data, args.new, args.seed)
        con = duckdb.connect(str(args.warehouse))
        _insert(con, held)
        con.close()
        figures.update(_link(link_people, warehouse))
    elif name == "delete":
        con = duckdb.connect(str(args.warehouse))
        con.execute(
            "UPDATE canonical.person SET is_deleted = true WHERE (org_id, source_id) IN ("
            "SELECT org_id, source_id FROM canonical.person "
            f"ORDER BY hash(source_id || '#{args.seed}'), org_id, source_id LIMIT {args.delete})"
        )
        con.close()
        figures.update(_link(link_people, warehouse))
    elif name == "link":
        figures.update(_link(link_people, warehouse, full=args.full))
    elif name == "score":
        from benchmarks.linkage.score import score

        con = duckdb.connect(str(args.warehouse), read_only=True)
        predicted = con.sql(
            "SELECT org_id, source_id, person_key FROM hub.person_link"
        ).to_arrow_table()
        con.close()
        figures["report"] = score(args.data, predicted).report()
    figures["stage_s"] = round(time.perf_counter() - started, 2)
    figures["peak_mb"] = round(peak_mb())
    return figures


def _link(link_people: Any, warehouse: Any, full: bool = False) -> dict[str, Any]:
    result = link_people(warehouse, full=full)
    return {
        "mode": result.mode,
        "reason": result.reason,
        "records": result.records,
        "changed": result.changed_records,
        "deleted": result.deleted_records,
        "relinked": result.relinked_records,
        "people": result.people,
        "key_changes": result.key_changes,
        "link_s": result.seconds,
        "steps_s": result.timings,
    }


def _child(name: str, args: argparse.Namespace, warehouse: Path, full: bool = False) -> dict:
    command = [
        sys.executable, "-m", "benchmarks.linkage.incremental", "--stage", name,
        "--data", str(args.data), "--warehouse", str(warehouse), "--new", str(args.new),
        "--delete", str(args.delete), "--seed", str(args.seed),
    ] + (["--full"] if full else [])  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"stage {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a generate.py output folder")
    parser.add_argument("--new", type=int, default=10_000, help="records added incrementally")
    parser.add_argument("--delete", type=int, default=1_000, help="records then deleted")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--compare-full", action="store_true")
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    parser.add_argument("--warehouse", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stage:
        print(json.dumps(stage(args.stage, args)))
        return 0
    with tempfile.TemporaryDirectory(prefix="hub-incremental-") as tmp:
        warehouse = Path(tmp) / "warehouse.duckdb"
        steps = [
            ("load base records", "load_base", False),
            ("full link of the base", "link", False),
            (f"add {args.new:,} records, link", "add_new", False),
            ("score after the additions", "score", False),
        ]
        report = None
        for label, name, full in steps:
            figures = _child(name, args, warehouse, full)
            report = figures.pop("report", report)
            print(f"{label}: {json.dumps(figures)}", flush=True)
        print(report)
        if args.compare_full:
            whole = Path(tmp) / "whole.duckdb"
            whole.write_bytes(warehouse.read_bytes())
            print("same state linked in full:", json.dumps(_child("link", args, whole, True)))
            figures = _child("score", args, whole)
            print(figures.pop("report"))
        figures = _child("delete", args, warehouse)
        print(f"delete {args.delete:,} records, link: {json.dumps(figures)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
