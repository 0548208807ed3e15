"""Whether a raw table has nothing to merge with, so a load may skip dlt's merge.

A ``merge`` load on DuckDB copies every row into the staging dataset, then deletes the
matching keys from the final table and inserts from staging, de-duplicated: for a Bulk
first load of 200,000 records that was about 0.9 s of a 3.5 s load, spent merging into
nothing. A resource whose table is absent or empty, and whose load cannot hold one key
twice, may instead ``append`` (``APPEND``): the same rows, types and nulls. Every later
load merges again, as the resource's own ``write_disposition`` says. A reader that cannot
rule a repeated key out beforehand (Salesforce REST pages) watches for one and, on seeing
it, gives its later items ``merge`` hints: dlt then merges the whole table's load, every
earlier item included, so the newest version wins as in any merge.

The one thing a merge did that an append does not: be repeatable. dlt runs a job again
when a process dies after the job's INSERT committed but before dlt marked it done (a
window of milliseconds); an appended job then holds its rows twice. ``repeated_rows_removed``
runs after every load (pipelines/lib/raw_assets.py): a key held twice in a merged table can
only come from that, and its copies are identical rows, so they are cut back to one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation

log = logging.getLogger(__name__)

# Hints for an item of a load that ``nothing_to_merge`` allowed to skip the merge.
APPEND = "append"


def nothing_to_merge(table: str) -> bool:
    """True when the current pipeline's destination has no row of ``table`` (or no table).

    Asked of the destination, not the resource state: state can be reset or restored while
    the table keeps its rows, and appending onto those would duplicate their keys. Runs
    inside a resource (``dlt.current.pipeline()``); the pipeline's own earlier packages are
    loaded before it extracts, so no pending load can add rows after this answer.
    """
    pipeline = dlt.current.pipeline()
    try:
        with pipeline.sql_client() as client:
            name = client.make_qualified_table_name(table)
            rows = client.execute_sql(f"SELECT 1 FROM {name} LIMIT 1")
    except DatabaseUndefinedRelation:
        return True
    return not rows


def first_load_hints(columns: dict[str, dict[str, Any]]) -> Any:
    """Item hints for a first load: the resource's columns, loaded with ``append``.

    ``dedup_sort`` (which of two versions of a key a merge keeps) is left out: with nothing
    to merge a load holding a key twice must not append, and dlt warns of the hint on every
    append load.
    """
    plain = {
        name: {hint: value for hint, value in column.items() if hint != "dedup_sort"}
        for name, column in columns.items()
    }
    return dlt.mark.make_hints(columns=plain, write_disposition=APPEND)


def repeated_rows_removed(pipeline: dlt.Pipeline, tables: Iterable[str]) -> dict[str, int]:
    """Cut rows a re-run append job left twice back to one, in each merged table of
    ``tables`` with a primary key; returns the keys repaired per table (counts only).

    One grouped count per table per load (milliseconds at a few hundred thousand rows);
    the rewrite runs only when a key is held twice, in one transaction.
    """
    schema = pipeline.default_schema
    repaired: dict[str, int] = {}
    with pipeline.sql_client() as client:
        for table in tables:
            if table not in schema.tables or schema.tables[table].get("write_disposition") != (
                "merge"
            ):
                continue
            columns = schema.get_table_columns(table)
            keys = [name for name, column in columns.items() if column.get("primary_key")]
            if not keys:
                continue
            name = client.make_qualified_table_name(table)
            key_list = ", ".join(client.escape_column_name(k) for k in keys)
            try:
                [(twice,)] = client.execute_sql(
                    f"SELECT COUNT(*) FROM (SELECT 1 FROM {name} GROUP BY {key_list} "
                    "HAVING COUNT(*) > 1) AS repeated"
                )
            except DatabaseUndefinedRelation:
                continue
            if not twice:
                continue
            once = client.make_qualified_table_name(f"{table}__once")
            with client.begin_transaction():
                client.execute_sql(f"CREATE TABLE {once} AS SELECT DISTINCT * FROM {name}")
                client.execute_sql(f"DELETE FROM {name}")
                client.execute_sql(f"INSERT INTO {name} SELECT * FROM {once}")
                client.execute_sql(f"DROP TABLE {once}")
            [(left,)] = client.execute_sql(
                f"SELECT COUNT(*) FROM (SELECT 1 FROM {name} GROUP BY {key_list} "
                "HAVING COUNT(*) > 1) AS repeated"
            )
            if left:
                log.warning(
                    "%s: %d key(s) are held by rows that differ; a merge load never writes "
                    "that, so the table needs a full reload (hub run --full)",
                    table,
                    left,
                )
            repaired[table] = twice - left
    return repaired
