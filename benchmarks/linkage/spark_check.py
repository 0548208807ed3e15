"""Score one network with the hub's linkage model on Spark and on DuckDB, and compare.

    .venv/bin/pip install "pyspark>=3.5"      # and a Java runtime (17 for Spark 4)
    .venv/bin/python -m benchmarks.linkage.generate --people 20000 --orgs 10 --out /tmp/lb20k
    .venv/bin/python -m benchmarks.linkage.spark_check --data /tmp/lb20k

The hub links on DuckDB; networks too big for one machine would run the same Splink model
on Spark. This checks that claim rather than trusting it: the bundled model (settings,
blocking rules with the consent condition, comparisons, term-frequency adjustments) scores
the same normalised records on a local Spark session and on DuckDB, and the script prints
how many pairs each found and how far their probabilities differ (exit 1 if the pairs
differ). Not part of the test suite: Spark needs a JVM and ~300 MB of packages the hub
itself does not.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from transforms.dedup import model as link_model
from transforms.dedup.link import bundled_model, with_code_blocking_rules
from transforms.dedup.normalise import normalise_people


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a generate.py output folder")
    parser.add_argument("--floor", type=float, default=0.01, help="lowest probability kept")
    args = parser.parse_args(argv)

    from pyspark.sql import SparkSession
    from splink import Linker, SparkAPI
    from splink.backends.spark import similarity_jar_location

    records = normalise_people(pq.read_table(args.data / "records.parquet"))
    model = with_code_blocking_rules(bundled_model())

    started = time.perf_counter()
    db_api = link_model.db_api_for()
    duck = (
        link_model.linker_for(records, model, db_api)
        .inference.predict(threshold_match_probability=args.floor, warning_mode="never")
        .as_pyarrow_table()
    )
    duck_s = time.perf_counter() - started

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("hub-linkage-spark-check")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.ui.enabled", "false")
        .config("spark.jars", similarity_jar_location())  # Splink's jaro_winkler & co.
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    checkpoints = tempfile.TemporaryDirectory(prefix="hub-spark-checkpoints-")
    spark.sparkContext.setCheckpointDir(checkpoints.name)  # Splink checkpoints its steps
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        # Through Parquet: Spark reads Arrow's list and date types exactly.
        pq.write_table(records, Path(tmp) / "records.parquet")
        frame = spark.read.parquet(str(Path(tmp) / "records.parquet")).cache()
        frame.count()
        spark_frame = SparkAPI(spark_session=spark).register(frame, dataset_display_name="people")
        spark_model = link_model.model_for_dialect(model, "spark")
        spark_linker = Linker(spark_frame, spark_model, log_level=30)
        on_spark = spark_linker.inference.predict(
            threshold_match_probability=args.floor, warning_mode="never"
        ).as_pandas_dataframe()[["unique_id_l", "unique_id_r", "match_probability"]]
    spark_s = time.perf_counter() - started
    spark.stop()
    checkpoints.cleanup()

    con = duckdb.connect()
    con.register("duck", duck)
    con.register("on_spark", on_spark)
    both = """
        FROM duck AS d FULL JOIN on_spark AS s
        ON least(d.unique_id_l, d.unique_id_r) = least(s.unique_id_l, s.unique_id_r)
        AND greatest(d.unique_id_l, d.unique_id_r) = greatest(s.unique_id_l, s.unique_id_r)
    """
    only_duck, only_spark, shared, differ, max_diff = con.execute(
        f"""
        SELECT COUNT(*) FILTER (WHERE s.unique_id_l IS NULL),
               COUNT(*) FILTER (WHERE d.unique_id_l IS NULL),
               COUNT(*) FILTER (WHERE d.unique_id_l IS NOT NULL AND s.unique_id_l IS NOT NULL),
               COUNT(*) FILTER (WHERE abs(d.match_probability - s.match_probability) > 1e-6),
               MAX(abs(d.match_probability - s.match_probability))
        {both}
        """
    ).fetchall()[0]
    print(
        json.dumps(
            {
                "records": records.num_rows,
                "pairs_duckdb": duck.num_rows,
                "pairs_spark": len(on_spark),
                "pairs_in_both": shared,
                "only_duckdb": only_duck,
                "only_spark": only_spark,
                "pairs_scored_differently": differ,
                "max_probability_difference": max_diff,
                "duckdb_s": round(duck_s, 1),
                "spark_s": round(spark_s, 1),
            },
            indent=1,
        )
    )
    # Jaro-Winkler differs slightly between DuckDB and Splink's Spark functions (see
    # benchmarks/RESULTS.md), so a few pairs near a similarity threshold may score apart;
    # finding different pairs would mean the blocking rules do not translate.
    return 0 if only_duck == only_spark == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
