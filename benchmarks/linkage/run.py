"""Link a generated benchmark network with the hub's linker, then score it against its truth.

    .venv/bin/python -m benchmarks.linkage.generate --people 100000 --orgs 30 --out /tmp/lb
    .venv/bin/python -m benchmarks.linkage.run --data /tmp/lb

Prints time per step (normalise, train, link), peak memory (``VmHWM``) and the scorer's
figures. ``--write-default-model`` saves the trained model as the bundled one
(``transforms/dedup/default_model.json``) that networks too small to train their own use.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.harness import peak_mb
from benchmarks.linkage.score import score
from transforms.dedup.cluster import assign_keys
from transforms.dedup.link import DEFAULT_MODEL, Thresholds, link_records
from transforms.dedup.normalise import normalise_people

MODEL_PATH = Path(__file__).resolve().parents[2] / "transforms" / "dedup" / DEFAULT_MODEL


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a generate.py output folder")
    parser.add_argument("--write-default-model", action="store_true")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    people = pq.read_table(args.data / "records.parquet")
    t0 = time.perf_counter()
    records = normalise_people(people)
    t1 = time.perf_counter()
    outcome = link_records(records, thresholds=Thresholds(min_records_to_train=1))
    t2 = time.perf_counter()
    keys, _ = assign_keys(outcome.links["group"].to_pylist(), [None] * outcome.links.num_rows)
    ids = outcome.links["unique_id"].to_pylist()
    predicted = pa.table(
        {
            "org_id": [u.split("|", 1)[0] for u in ids],
            "source_id": [u.split("|", 1)[1] for u in ids],
            "person_key": keys,
        }
    )
    t3 = time.perf_counter()
    scores = score(args.data, predicted)
    figures = {
        "records": people.num_rows,
        "normalise_s": round(t1 - t0, 1),
        "train_and_link_s": round(t2 - t1, 1),
        "keys_s": round(t3 - t2, 1),
        "total_s": round(t3 - started, 1),
        "peak_mb": round(peak_mb()),
        "model_version": outcome.model_version,
        **outcome.stats,
        "review_queue": outcome.review.num_rows,
        "blocking_warnings": [w.message() for w in outcome.blocking_warnings],
    }
    print(json.dumps(figures, indent=1))
    print(scores.report())
    if args.write_default_model:
        MODEL_PATH.write_text(
            json.dumps(outcome.model_json, indent=1, sort_keys=True, default=str) + "\n",
            encoding="utf-8",
        )
        print(f"wrote {MODEL_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
