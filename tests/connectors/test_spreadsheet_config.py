"""Config that fits the files members really send (issue #19, item 10).

Required fields beyond the model's minimum, the member's own null words, a decimal
separator, a default for a column a file lacks, and several files for one table; all of it
bounded, because a member's YAML is untrusted input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connectors.errors import MemberConfigError, SpreadsheetError
from connectors.members import Member
from connectors.spreadsheets import Issue, read_entity
from tests.connectors.spreadsheet_helpers import member, person_table, write_text


def _load(m: Member, entity: str = "person") -> tuple[list[dict[str, Any]], list[Issue]]:
    rows: list[dict[str, Any]] = []
    issues: list[Issue] = []
    for batch in read_entity(m, entity):
        names = list(batch.columns)
        rows += [
            dict(zip(names, vals, strict=True))
            for vals in zip(*batch.columns.values(), strict=True)
        ]
        issues += batch.issues
    return rows, issues


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
    rows, issues = _load(m)
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
    rows, issues = _load(m)
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
    rows, issues = _load(m, "service_delivery")
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
    rows, _ = _load(m, "outcome")
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
        _load(m, "service_delivery")
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
