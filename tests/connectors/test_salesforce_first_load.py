"""A Bulk first load appends (no staging copy, no merge); every later load still merges.

Real sandbox over loopback HTTP, real dlt pipelines into DuckDB files. The tables must end
up exactly as the all-``merge`` REST path leaves them: same rows, types, nulls, deletions.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dlt
import duckdb
import pytest

from connectors.first_load import APPEND
from connectors.salesforce_npsp.settings import ClientCredentials, SalesforceSettings
from connectors.salesforce_npsp.source import _repeats, load_npsp, raw_pipeline
from sandboxes.salesforce_npsp import SalesforceSandbox
from tests.connectors.test_salesforce_source import SIZES, Harness, _table_rows, clock

TABLES = ("npsp__contact", "pmdm__service_delivery")
BULK = {"bulk_threshold": 1, "bulk_poll_seconds": 0.01, "bulk_page_records": 7}


def _tables(db: Path, dataset: str) -> set[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "select table_name from information_schema.tables where table_schema = ?", [dataset]
        ).fetchall()
    return {r[0] for r in rows}


def _disposition(pipeline: dlt.Pipeline, table: str) -> str | None:
    return pipeline.default_schema.get_table(table).get("write_disposition")


@pytest.fixture()
def harness(tmp_path: Path) -> Iterator[Harness]:
    with SalesforceSandbox(sizes=SIZES, page_size=7) as sf:
        yield Harness(sf, tmp_path)


def test_first_bulk_load_appends_then_later_loads_merge(harness: Harness) -> None:
    sf = harness.sf
    _, report = harness.load(**BULK)
    assert report.methods["npsp__contact"] == "bulk"
    # Appended: the merge's staging copy was never made.
    assert "npsp__contact" not in _tables(harness.db, "raw_sfdemo_staging")
    assert harness.query("select count(*), count(distinct id) from npsp__contact") == [(40, 40)]

    ids = sf.ids("Contact")
    sf.update_records("Contact", ids[:3], {"LastName": "Changedname"})
    sf.delete_records("Contact", ids[10:12])
    _, report = harness.load(**BULK)  # incremental: REST, merged on Id
    assert report.methods["npsp__contact"] == "rest"
    assert _disposition(harness.pipeline, "npsp__contact") == "merge"
    # The newest version of a record still wins a merge of two (left out of the append).
    table = harness.pipeline.default_schema.get_table("npsp__contact")
    assert table["columns"]["system_modstamp"].get("dedup_sort") == "desc"
    assert harness.query("select count(*), count(distinct id) from npsp__contact") == [(40, 40)]
    changed = harness.query("select id from npsp__contact where last_name = 'Changedname'")
    assert sorted(r[0] for r in changed) == sorted(ids[:3])
    deleted = harness.query("select id, last_name from npsp__contact where is_deleted")
    assert sorted(deleted) == sorted((i, None) for i in ids[10:12])

    # A full refresh through Bulk onto the loaded rows merges: no id twice, changes kept.
    sf.update_records("Contact", ids[20:22], {"LastName": "Refreshed"})
    _, report = harness.load(full_refresh=True, **BULK)
    assert report.methods["npsp__contact"] == "bulk"
    assert _disposition(harness.pipeline, "npsp__contact") == "merge"
    assert harness.query("select count(*), count(distinct id) from npsp__contact") == [(40, 40)]
    refreshed = harness.query("select id from npsp__contact where last_name = 'Refreshed'")
    assert sorted(r[0] for r in refreshed) == sorted(ids[20:22])
    assert len(harness.query("select id from npsp__contact where is_deleted")) == 2


def test_an_emptied_table_is_appended_to_again(harness: Harness) -> None:
    harness.load(**BULK)
    with duckdb.connect(str(harness.db)) as con:
        con.execute("delete from raw_sfdemo.npsp__contact")
    _, report = harness.load(full_refresh=True, **BULK)
    assert report.methods["npsp__contact"] == "bulk"
    assert _disposition(harness.pipeline, "npsp__contact") == APPEND
    assert harness.query("select count(*), count(distinct id) from npsp__contact") == [(40, 40)]


def test_bulk_first_load_then_changes_equal_the_all_merge_rest_path(tmp_path: Path) -> None:
    """Two members, same org: one loads through Bulk first, one through REST only (both
    append their first load, then merge); after the same changes and deletions their tables
    are identical."""
    with SalesforceSandbox(sizes=SIZES, page_size=7) as sf:
        credentials = ClientCredentials(sf.client_secret)
        paths = {"bulk": BULK, "rest": {"bulk_threshold": None}}
        pipelines = {
            name: raw_pipeline(
                name, dlt.destinations.duckdb(str(tmp_path / f"{name}.duckdb")), tmp_path / "p"
            )
            for name in paths
        }

        def load_all() -> None:
            for name, extra in paths.items():
                settings = SalesforceSettings(
                    login_url=sf.url,
                    client_id=sf.client_id,
                    lookback_seconds=5,
                    objects=TABLES,
                    **extra,
                )
                load_npsp(pipelines[name], settings, credentials, clock=clock, sleep=lambda _: 0)

        load_all()
        contacts = sf.ids("Contact")
        sf.update_records("Contact", contacts[:2], {"FirstName": "", "Phone": None})
        sf.delete_records("Contact", contacts[5:7])
        sf.delete_records("pmdm__ServiceDelivery__c", sf.ids("pmdm__ServiceDelivery__c")[:3])
        load_all()
    for table in TABLES:
        bulk = _table_rows(tmp_path / "bulk.duckdb", "raw_bulk", table)
        rest = _table_rows(tmp_path / "rest.duckdb", "raw_rest", table)
        assert bulk == rest, table
    with duckdb.connect(str(tmp_path / "bulk.duckdb"), read_only=True) as con:
        types = con.execute(
            "select table_name, column_name, data_type from information_schema.columns "
            "where table_schema = 'raw_bulk' order by all"
        ).fetchall()
    with duckdb.connect(str(tmp_path / "rest.duckdb"), read_only=True) as con:
        rest_types = con.execute(
            "select table_name, column_name, data_type from information_schema.columns "
            "where table_schema = 'raw_rest' order by all"
        ).fetchall()
    assert types == rest_types


def test_a_rest_first_load_appends_too_and_later_loads_merge(harness: Harness) -> None:
    _, report = harness.load(bulk_threshold=None)
    assert report.methods["npsp__contact"] == "rest"
    assert "npsp__contact" not in _tables(harness.db, "raw_sfdemo_staging")
    assert _disposition(harness.pipeline, "npsp__contact") == APPEND
    assert harness.query("select count(*), count(distinct id) from npsp__contact") == [(40, 40)]

    ids = harness.sf.ids("Contact")
    harness.sf.update_records("Contact", ids[:2], {"LastName": "Changedname"})
    _, report = harness.load(bulk_threshold=None)
    assert _disposition(harness.pipeline, "npsp__contact") == "merge"
    assert harness.query("select count(*), count(distinct id) from npsp__contact") == [(40, 40)]
    changed = harness.query("select id from npsp__contact where last_name = 'Changedname'")
    assert sorted(r[0] for r in changed) == sorted(ids[:2])


def test_a_record_listed_twice_in_a_rest_first_load_is_merged_newest_first(
    harness: Harness,
) -> None:
    """A cursor that is not a snapshot may list a record edited while read twice: the
    first load then merges after all, so the table holds it once, as last edited."""
    twice = harness.sf.ids("Contact")[3]
    harness.sf.repeat_during_read("Contact", twice, {"LastName": "Editedwhileread"})
    _, report = harness.load(bulk_threshold=None)
    assert report.methods["npsp__contact"] == "rest"
    assert _disposition(harness.pipeline, "npsp__contact") == "merge"
    assert harness.query("select count(*), count(distinct id) from npsp__contact") == [(40, 40)]
    assert harness.query(f"select last_name from npsp__contact where id = '{twice}'") == [
        ("Editedwhileread",)
    ]


def test_repeats_across_batches_are_seen_too() -> None:
    seen: set[str] = set()
    assert _repeats(["a", "b"], seen) is False
    assert _repeats(["c", "d", "c"], seen) is True
    assert _repeats(["e"], seen) is False
    assert _repeats(["f", "a"], seen) is True
    assert seen == {"a", "b", "c", "d", "e", "f"}
