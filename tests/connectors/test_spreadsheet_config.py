"""Config that fits the files members really send (issue #19, item 10).

Required fields beyond the model's minimum, the member's own null words, a decimal
separator, a default for a column a file lacks, and several files for one table; all of it
bounded, because a member's YAML is untrusted input.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from connectors.errors import MemberConfigError, SpreadsheetError
from connectors.members import Member
from connectors.spreadsheets import read_entity
from tests.connectors.spreadsheet_helpers import member, person_table, read_rows, write_text

PEOPLE = [
    "Client ID,First name,DOB,Phone",
    "1,Ann,01/02/1985,07700 900123",
    "2,,01/02/1985,-",
    "3,Cat,N/A,unknown",
    "4,Dan,,",
]


def test_required_fields_beyond_the_minimum_reject_rows_without_them(tmp_path: Path) -> None:
    path = write_text(tmp_path / "people.csv", PEOPLE)
    columns = {"source_id": "Client ID", "given_name": "First name", "birth_date": "DOB"}
    table = person_table(path, columns, required=["given_name", "birth_date"])
    m = member(tmp_path, {"person": table}, date_order="day_first", sharing={"consent": "none"})
    rows, issues = read_rows(m)
    assert [r["source_id"] for r in rows] == ["1"]
    assert {(i.source_row, i.code) for i in issues} == {
        (3, "missing_given_name"),
        (4, "invalid_date"),  # 'N/A' is not a date (no null words configured)
        (5, "missing_birth_date"),
    }


def test_required_fields_must_exist_and_be_mapped(tmp_path: Path) -> None:
    path = write_text(tmp_path / "people.csv", PEOPLE)
    with pytest.raises(MemberConfigError) as info:
        member(
            tmp_path,
            {"person": person_table(path, {"source_id": "Client ID"}, required=["dob", "email"])},
            sharing={"consent": "none"},
        )
    text = str(info.value)
    assert "connector.tables.person.required': 'dob' is not a field of person" in text
    assert "'email' is required; add 'email: <header in your file>'" in text


def test_null_words_are_blank_cells_for_this_member(tmp_path: Path) -> None:
    path = write_text(tmp_path / "people.csv", PEOPLE)
    columns = {"source_id": "Client ID", "birth_date": "DOB", "phone": "Phone"}
    m = member(
        tmp_path,
        {"person": person_table(path, columns)},
        date_order="day_first",
        null_values=["n/a", "-", "Unknown"],
        sharing={"consent": "none"},
    )
    rows, issues = read_rows(m)
    assert issues == []
    assert [(r["birth_date"] is None, r["phone"]) for r in rows] == [
        (False, "+447700900123"),
        (False, None),
        (True, None),
        (True, None),
    ]


def _sessions(tmp_path: Path, lines: list[str], **table: Any) -> Member:
    people = write_text(tmp_path / "people.csv", ["Client ID", "1", "2"])
    sessions = write_text(tmp_path / "sessions.csv", lines)
    return member(
        tmp_path,
        {
            "person": person_table(people, {"source_id": "Client ID"}),
            "service_delivery": {"file": str(sessions), **table},
        },
        sharing={"consent": "none"},
        mappings={"programmes": {"Food Bank": "food_security"}},
    )


def test_a_default_stands_in_for_a_column_the_file_lacks(tmp_path: Path) -> None:
    m = _sessions(
        tmp_path,
        ["Client,Date,Hours", "1,2025-01-02,", "2,2025-01-03,2"],
        columns={"person_source_id": "Client", "delivered_on": "Date", "quantity": "Hours"},
        defaults={"programme": "Food Bank", "quantity": 1},
    )
    rows, issues = read_rows(m, "service_delivery")
    assert issues == []
    assert [(r["programme"], r["quantity"]) for r in rows] == [
        ("Food Bank", 1.0),
        ("Food Bank", 2.0),
    ]


def test_an_outcome_file_without_a_status_column(tmp_path: Path) -> None:
    people = write_text(tmp_path / "people.csv", ["Client ID", "1"])
    outcomes = write_text(tmp_path / "outcomes.csv", ["Client,Outcome,Date", "1,Housed,2025-02-01"])
    m = member(
        tmp_path,
        {
            "person": person_table(people, {"source_id": "Client ID"}),
            "outcome": {
                "file": str(outcomes),
                "columns": {
                    "person_source_id": "Client",
                    "outcome": "Outcome",
                    "measured_on": "Date",
                },
                "defaults": {"status": "Achieved"},
            },
        },
        sharing={"consent": "none"},
    )
    rows, _ = read_rows(m, "outcome")
    assert [(r["outcome"], r["status"]) for r in rows] == [("Housed", "Achieved")]


def test_defaults_are_checked_like_cells_and_never_stand_for_an_id(tmp_path: Path) -> None:
    with pytest.raises(MemberConfigError, match="an id cannot have a default"):
        _sessions(
            tmp_path,
            ["Date", "2025-01-02"],
            columns={"delivered_on": "Date", "programme": "Date"},
            defaults={"person_source_id": "1"},
        )
    m = _sessions(
        tmp_path,
        ["Client,Programme", "1,Food Bank"],
        columns={"person_source_id": "Client", "programme": "Programme"},
        defaults={"delivered_on": "sometime"},
    )
    with pytest.raises(SpreadsheetError) as info:
        read_rows(m, "service_delivery")
    assert "the default for delivered_on cannot be read" in info.value.problem
    assert "connector.tables.service_delivery.defaults.delivered_on" in info.value.fix


@pytest.mark.parametrize(
    ("extra", "table", "message"),
    [
        ({"null_values": [f"w{i}" for i in range(51)]}, {}, "null_values"),
        ({"null_values": ["x" * 201]}, {}, "null_values"),
        ({}, {"defaults": {"unit": "x" * 201}}, "defaults"),
        ({}, {"required": [f"f{i}" for i in range(21)]}, "required"),
    ],
)
def test_settings_are_bounded(
    tmp_path: Path, extra: dict[str, Any], table: dict[str, Any], message: str
) -> None:
    path = write_text(tmp_path / "people.csv", PEOPLE)
    with pytest.raises(MemberConfigError, match=message):
        member(
            tmp_path,
            {"person": person_table(path, {"source_id": "Client ID"}, **table)},
            sharing={"consent": "none"},
            **extra,
        )


# --- several files for one table ----------------------------------------------------------


def _monthly(tmp_path: Path, pattern: str = "sessions-*.csv") -> Member:
    folder = tmp_path / "acme_trust"
    folder.mkdir(exist_ok=True)
    people = write_text(folder / "people.csv", ["Client ID", "1", "2"])
    write_text(folder / "sessions-2025-01.csv", ["Client,Date", "1,2025-01-02", "2,2025-01-09"])
    write_text(folder / "sessions-2025-02.csv", ["Client,Date", "1,2025-02-02", "9,nonsense"])
    write_text(folder / "~$sessions-2025-03.csv", ["Excel's lock file, not data"])
    write_text(folder / "other.csv", ["Client,Date", "1,2020-01-01"])
    return member(
        tmp_path,
        {
            "person": person_table(people, {"source_id": "Client ID"}),
            "service_delivery": {
                "file": f"../acme_trust/{pattern}",
                "columns": {"person_source_id": "Client", "delivered_on": "Date"},
                "defaults": {"programme": "Food Bank"},
            },
        },
        sharing={"consent": "none"},
        mappings={"programmes": {"Food Bank": "food_security"}},
    )


def _run(m: Member, tmp_path: Path) -> list[str]:
    import dlt

    from connectors.spreadsheets import changed_tables, raw_pipeline, spreadsheet_source

    pipeline = raw_pipeline(
        m, dlt.destinations.duckdb(str(tmp_path / "warehouse.duckdb")), tmp_path / "pipelines"
    )
    changed = changed_tables(m, pipeline)
    if changed:
        pipeline.run(spreadsheet_source(m).with_resources(*changed))
    return changed


def _rows(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    import duckdb

    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


DELIVERIES = (
    "SELECT _source_file, person_source_id, CAST(delivered_on AS TEXT), _dlt_load_id "
    "FROM raw_acme_trust.spreadsheet__service_delivery ORDER BY 1, 3"
)
QUARANTINE = (
    "SELECT source_file, source_row, raw_value "
    "FROM raw_acme_trust.spreadsheet__service_delivery_quarantine ORDER BY 1, 2"
)


def test_each_file_of_a_pattern_is_loaded_and_reloaded_on_its_own(tmp_path: Path) -> None:
    m = _monthly(tmp_path)
    assert "spreadsheet__service_delivery" in _run(m, tmp_path)
    first = _rows(tmp_path, DELIVERIES)
    assert [r[:3] for r in first] == [
        ("sessions-2025-01.csv", "1", "2025-01-02"),
        ("sessions-2025-01.csv", "2", "2025-01-09"),
        ("sessions-2025-02.csv", "1", "2025-02-02"),
    ]
    assert _rows(tmp_path, QUARANTINE) == [("sessions-2025-02.csv", 3, "nonsense")]
    assert _run(m, tmp_path) == []  # nothing changed: nothing read
    folder = tmp_path / "acme_trust"
    write_text(folder / "sessions-2025-02.csv", ["Client,Date", "2,2025-02-03"])  # fixed
    write_text(folder / "sessions-2025-03.csv", ["Client,Date", "1,2025-03-01", "1,someday"])
    assert _run(m, tmp_path) == ["spreadsheet__service_delivery"]
    second = _rows(tmp_path, DELIVERIES)
    assert [r[:3] for r in second] == [
        ("sessions-2025-01.csv", "1", "2025-01-02"),
        ("sessions-2025-01.csv", "2", "2025-01-09"),
        ("sessions-2025-02.csv", "2", "2025-02-03"),
        ("sessions-2025-03.csv", "1", "2025-03-01"),
    ]
    assert second[0][3] == first[0][3] and second[1][3] == first[1][3]  # January untouched
    assert second[2][3] != first[2][3]
    assert _rows(tmp_path, QUARANTINE) == [("sessions-2025-03.csv", 3, "someday")]
    (folder / "sessions-2025-01.csv").unlink()  # a file taken away takes its rows with it
    assert _run(m, tmp_path) == ["spreadsheet__service_delivery"]
    assert [r[0] for r in _rows(tmp_path, DELIVERIES)] == [
        "sessions-2025-02.csv",
        "sessions-2025-03.csv",
    ]


def test_check_reports_each_file_of_a_pattern(tmp_path: Path) -> None:
    from connectors.spreadsheets import check_member

    report = check_member(_monthly(tmp_path))
    files = [(Path(t.file).name, t.rows_loaded, t.rows_rejected) for t in report.tables]
    assert files == [
        ("people.csv", 2, 0),
        ("sessions-2025-01.csv", 2, 0),
        ("sessions-2025-02.csv", 1, 1),
    ]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("../beta/sessions-*.csv", "not in a folder named acme_trust"),
        ("../*/sessions-*.csv", "wildcards (* ?) may only be in the file name"),
        ("../acme_trust/**.csv", "'**' is not allowed"),
    ],
)
def test_a_pattern_cannot_leave_the_members_folder(
    tmp_path: Path, pattern: str, message: str
) -> None:
    with pytest.raises(MemberConfigError, match=re.escape(message)):
        _monthly(tmp_path, pattern)


def test_a_pattern_is_bounded_and_its_files_checked_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = _monthly(tmp_path)
    outside = write_text(tmp_path / "secret.csv", ["Client,Date", "1,2025-01-01"])
    (tmp_path / "acme_trust" / "sessions-link.csv").symlink_to(outside)
    with pytest.raises(SpreadsheetError, match=r"outside the members' data folder|not in a folder"):
        list(read_entity(m, "service_delivery"))
    (tmp_path / "acme_trust" / "sessions-link.csv").unlink()
    monkeypatch.setattr("connectors.spreadsheets.reading.MAX_FILES_PER_TABLE", 1)
    with pytest.raises(SpreadsheetError, match="matches over 1 files"):
        list(read_entity(m, "service_delivery"))
    none = _monthly(tmp_path, "visits-*.csv")
    with pytest.raises(SpreadsheetError, match=r"no file in .* matches 'visits-\*\.csv'"):
        list(read_entity(none, "service_delivery"))


def test_moving_from_one_file_to_a_pattern_leaves_no_old_rows(tmp_path: Path) -> None:
    m = _monthly(tmp_path, "other.csv")
    _run(m, tmp_path)
    assert [r[0] for r in _rows(tmp_path, DELIVERIES)] == ["other.csv"]
    _run(_monthly(tmp_path), tmp_path)
    assert {r[0] for r in _rows(tmp_path, DELIVERIES)} == {
        "sessions-2025-01.csv",
        "sessions-2025-02.csv",
    }


def test_check_flags_a_row_repeated_in_a_later_file(tmp_path: Path) -> None:
    from connectors.spreadsheets import check_member

    m = _monthly(tmp_path)
    write_text(  # February's export repeats a January session
        tmp_path / "acme_trust" / "sessions-2025-02.csv",
        ["Client,Date", "1,2025-02-02", "1,2025-01-02"],
    )
    report = check_member(m)
    february = report.tables[-1]
    assert (february.repeated_rows, report.tables[1].repeated_rows) == (1, 0)
    text = report.render()
    assert "1 row(s) repeat an id an earlier file of this table already has (row 3 repeats" in text
    assert "of sessions-2025-01.csv): each file loads on its own, so both would load" in text


def test_a_new_file_matching_a_pattern_wakes_the_file_sensor(tmp_path: Path) -> None:
    from connectors.spreadsheets.content import states_digest
    from connectors.spreadsheets.watch import local_states

    m = _monthly(tmp_path)
    before = states_digest(local_states(m, {}))
    write_text(tmp_path / "acme_trust" / "~$sessions-2025-02.csv", ["a lock file appears"])
    assert states_digest(local_states(m, {})) == before  # opening a workbook is no change
    write_text(tmp_path / "acme_trust" / "sessions-2025-03.csv", ["Client,Date", "1,2025-03-01"])
    assert states_digest(local_states(m, {})) != before


def test_square_brackets_in_a_file_name_are_plain_characters(tmp_path: Path) -> None:
    folder = tmp_path / "acme_trust"
    folder.mkdir()
    write_text(folder / "people [final].csv", ["Client ID", "1"])
    write_text(folder / "sessions [2025]-01.csv", ["Client,Date", "1,2025-01-02"])
    m = member(
        tmp_path,
        {
            "person": person_table(folder / "people [final].csv", {"source_id": "Client ID"}),
            "service_delivery": {
                "file": str(folder / "sessions [2025]-*.csv"),
                "columns": {"person_source_id": "Client", "delivered_on": "Date"},
                "defaults": {"programme": "Food Bank"},
            },
        },
        sharing={"consent": "none"},
    )
    assert [r["source_id"] for r in read_rows(m)[0]] == ["1"]
    assert [r["_source_file"] for r in read_rows(m, "service_delivery")[0]] == [
        "sessions [2025]-01.csv"
    ]
