"""Incremental linking through ``link_people``: adds, changes, deletions and decisions.

A warehouse's canonical.person is written directly (the loaders are tested elsewhere); each
test runs the linker twice and checks that the second, incremental run gives the records it
touches the person a full run would, and leaves every other person key exactly as it was.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from benchmarks.linkage.generate import generate
from transforms.canonical import ensure_schema
from transforms.dedup.link import Thresholds
from transforms.dedup.normalise import INPUT_COLUMNS
from transforms.linkage import link_people
from transforms.warehouse import DuckDBWarehouse, PostgresWarehouse, Warehouse

Person = tuple[str, str, str, str, date | None, str | None, str | None, str | None, bool]
COLUMNS = INPUT_COLUMNS

BASE: list[Person] = [
    ("a", "1", "Robert", "Ashdown", date(1984, 3, 7), "rob@example.org", None, "M14 5AB", True),
    ("b", "7", "Bob", "Ashdown", date(1984, 3, 7), "rob@example.org", None, "LS6 2QT", True),
    ("a", "2", "Priya", "Okafor", date(1990, 11, 2), None, "+447700900456", "E8 1AA", True),
    ("a", "3", "Wen", "Lindqvist", date(1975, 1, 30), "wen@example.net", None, "B5 7RT", True),
    ("c", "9", "Tomasz", "Eze", date(2001, 6, 14), None, None, "CF10 1AA", True),
]


def _write(warehouse: Warehouse, rows: list[Person], deleted: set[str] = frozenset()) -> None:
    """Replace canonical.person with these rows (``deleted``: "org|id" flagged deleted)."""
    data = {name: [r[i] for r in rows] for i, name in enumerate(COLUMNS)}
    table = pa.table(
        {
            **{k: pa.array(v) for k, v in data.items() if k != "birth_date"},
            "birth_date": pa.array(data["birth_date"], pa.date32()),
            "source_system": pa.array(["test"] * len(rows)),
            "source_updated_at": pa.array([datetime(2026, 1, 1)] * len(rows)),
            "is_deleted": pa.array([f"{r[0]}|{r[1]}" in deleted for r in rows]),
            "_load_id": pa.array(["1"] * len(rows)),
        }
    )
    with warehouse.connect() as session:
        ensure_schema(session, warehouse.dialect)
        session.execute("DELETE FROM canonical.person")
        session.replace_table("canonical", "person_incoming", table)
        cols = ", ".join(table.column_names)
        session.execute(
            f"INSERT INTO canonical.person ({cols}) SELECT {cols} FROM canonical.person_incoming"
        )
        session.execute("DROP TABLE canonical.person_incoming")


def _fetch(warehouse: Warehouse, sql: str) -> list[tuple]:
    with warehouse.connect() as session:
        return session.fetchall(sql)


def _keys(warehouse: Warehouse) -> dict[str, str]:
    rows = _fetch(warehouse, "SELECT org_id, source_id, person_key FROM hub.person_link")
    return {f"{o}|{s}": k for o, s, k in rows}


def _history(warehouse: Warehouse) -> list[tuple[str, str, str | None]]:
    return [
        (change, key, other)
        for change, key, other in _fetch(
            warehouse,
            "SELECT change, person_key, other_key FROM hub.person_key_history ORDER BY changed_at",
        )
    ]


# These networks are tiny: any change is more than the share of records above which a full
# run is chosen as cheaper, so the tests lift that share to see the incremental path.
INCREMENTAL = Thresholds(max_incremental_share=1.0)


@pytest.fixture()
def warehouse(tmp_path: Path) -> Warehouse:
    return DuckDBWarehouse(tmp_path / "warehouse.duckdb")


def test_first_run_is_full_then_nothing_changed_is_a_no_op(warehouse: Warehouse) -> None:
    _write(warehouse, BASE)
    first = link_people(warehouse, INCREMENTAL)
    assert (first.mode, first.reason) == ("full", "first linkage run")
    assert first.records == 5 and first.people == 4 and first.cross_member_people == 1
    keys = _keys(warehouse)
    assert keys["a|1"] == keys["b|7"]

    again = link_people(warehouse, INCREMENTAL)
    assert again.mode == "unchanged" and again.relinked_records == 0
    assert _keys(warehouse) == keys
    runs = _fetch(warehouse, "SELECT mode, changed_records FROM hub.linkage_run")
    # Both runs may fall in one second (run_at's precision), so compare as a set.
    assert sorted(runs) == [("full", 5), ("unchanged", 0)]


def test_new_records_join_existing_people_and_leave_the_rest_alone(warehouse: Warehouse) -> None:
    _write(warehouse, BASE)
    link_people(warehouse, INCREMENTAL)
    before = _keys(warehouse)
    added = [
        # Robert again, at a third member, moved house: joins his person.
        ("d", "40", "Robert", "Ashdown", date(1984, 3, 7), None, None, "BS1 4DJ", True),
        # Someone new.
        ("d", "41", "Ines", "Varga", date(1999, 4, 4), None, None, "BS1 4DJ", True),
    ]
    _write(warehouse, BASE + added)
    result = link_people(warehouse, INCREMENTAL)
    assert result.mode == "incremental"
    assert result.changed_records == 2 and result.deleted_records == 0
    # Only Robert's person and the two new records were worked out again.
    assert result.relinked_records == 4
    after = _keys(warehouse)
    assert after["d|40"] == before["a|1"] == after["a|1"] == after["b|7"]
    assert after["d|41"] not in before.values()
    assert {u: after[u] for u in before} == before  # nobody renamed
    assert result.people == 5 and result.cross_member_people == 1
    new = [h for h in _history(warehouse) if h[1] == after["d|41"]]
    assert new == [("created", after["d|41"], None)]


def test_changed_record_leaves_its_person_and_deleted_record_is_unlinked(
    warehouse: Warehouse,
) -> None:
    _write(warehouse, BASE)
    link_people(warehouse, INCREMENTAL)
    before = _keys(warehouse)
    rows = list(BASE)
    # Record b|7 turns out to be the father: a birth date 28 years earlier.
    father = date(1956, 8, 1)
    rows[1] = ("b", "7", "Bob", "Ashdown", father, "rob@example.org", None, "LS6 2QT", True)
    _write(warehouse, rows, deleted={"c|9"})
    result = link_people(warehouse, INCREMENTAL)
    assert result.mode == "incremental"
    assert (result.changed_records, result.deleted_records) == (1, 1)
    after = _keys(warehouse)
    assert "c|9" not in after
    assert after["a|1"] == before["a|1"]  # one record each way: the tie keeps the key first
    assert after["b|7"] != before["b|7"]
    history = _history(warehouse)
    assert ("split", after["b|7"], before["b|7"]) in history
    assert ("retired", before["c|9"], None) in history
    assert result.people == 4 and result.cross_member_people == 0


def test_decision_made_after_a_run_is_honoured_by_the_next_incremental_run(
    warehouse: Warehouse,
) -> None:
    _write(warehouse, BASE)
    link_people(warehouse, INCREMENTAL)
    assert _keys(warehouse)["a|1"] == _keys(warehouse)["b|7"]
    with warehouse.connect() as session:
        session.execute(
            "INSERT INTO hub.link_decision VALUES ('a', '1', 'b', '7', 'reject', 'tester', ?)",
            [datetime.now(UTC).replace(tzinfo=None, microsecond=0)],
        )
    result = link_people(warehouse, INCREMENTAL)
    assert result.mode == "incremental" and result.changed_records == 2
    keys = _keys(warehouse)
    assert keys["a|1"] != keys["b|7"]
    # An accept of a pair the model keeps apart (different surname, no shared contact).
    with warehouse.connect() as session:
        session.execute(
            "INSERT INTO hub.link_decision VALUES ('a', '2', 'a', '3', 'accept', 'tester', ?)",
            [datetime(2100, 1, 1)],
        )
    link_people(warehouse, INCREMENTAL)
    keys = _keys(warehouse)
    assert keys["a|2"] == keys["a|3"] and keys["a|1"] != keys["b|7"]


def test_full_run_when_asked_or_when_the_network_outgrows_its_model(
    warehouse: Warehouse,
) -> None:
    _write(warehouse, BASE)
    link_people(warehouse, INCREMENTAL)
    assert link_people(warehouse, full=True).reason == "a full re-link was asked for"
    grown = BASE + [
        ("e", str(i), "Given", f"Family{i}", date(1970, 1, 1 + i), None, None, None, True)
        for i in range(10)
    ]
    _write(warehouse, grown)
    result = link_people(warehouse, Thresholds(min_records_to_train=12))
    assert result.mode == "full" and "15 records are enough to estimate" in result.reason


def _network_rows(tmp_path: Path, people: int, seed: int) -> list[Person]:
    generate(people, orgs=6, seed=seed, out=tmp_path / "network")
    records = pq.read_table(tmp_path / "network" / "records.parquet")
    return list(zip(*(records[c].to_pylist() for c in COLUMNS), strict=True))


def test_incremental_links_like_a_full_run_on_a_synthetic_network(tmp_path: Path) -> None:
    rows = _network_rows(tmp_path, 1500, seed=5)
    base, extra = rows[: len(rows) - 150], rows[len(rows) - 150 :]
    gone = {f"{r[0]}|{r[1]}" for r in base[:40]}
    # One model for both ways, so the comparison is about incremental vs full linking only.
    thresholds = Thresholds(min_records_to_train=10**9, max_incremental_share=0.5)

    step = DuckDBWarehouse(tmp_path / "step.duckdb")
    _write(step, base)
    link_people(step, thresholds)
    _write(step, base + extra, deleted=gone)
    result = link_people(step, thresholds)
    assert result.mode == "incremental"
    assert result.changed_records == 150 and result.deleted_records == 40
    assert result.relinked_records < len(rows) / 2

    whole = DuckDBWarehouse(tmp_path / "whole.duckdb")
    _write(whole, base + extra, deleted=gone)
    link_people(whole, thresholds)

    def partition(warehouse: Warehouse) -> set[frozenset[str]]:
        groups: dict[str, set[str]] = {}
        for uid, key in _keys(warehouse).items():
            groups.setdefault(key, set()).add(uid)
        return {frozenset(g) for g in groups.values()}

    assert partition(step) == partition(whole)


def test_incremental_run_on_postgresql(postgres_dsn: str) -> None:
    warehouse = PostgresWarehouse(postgres_dsn)
    _write(warehouse, BASE)
    link_people(warehouse, INCREMENTAL)
    before = _keys(warehouse)
    added = ("d", "40", "Robert", "Ashdown", date(1984, 3, 7), None, None, "BS1 4DJ", True)
    _write(warehouse, [*BASE, added], deleted={"a|3"})
    result = link_people(warehouse, INCREMENTAL)
    assert result.mode == "incremental" and result.deleted_records == 1
    after = _keys(warehouse)
    assert after["d|40"] == before["a|1"] and "a|3" not in after
    assert ("retired", before["a|3"], None) in _history(warehouse)
