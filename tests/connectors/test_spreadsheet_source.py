"""The dlt source end to end: real files -> real dlt -> a real DuckDB file, twice."""

from __future__ import annotations

from pathlib import Path

import dlt
import duckdb
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from connectors.errors import SpreadsheetError
from connectors.members import Member
from connectors.spreadsheets import (
    RAW_COLUMNS,
    changed_tables,
    check_member,
    raw_pipeline,
    spreadsheet_source,
)
from tests.connectors.spreadsheet_helpers import member, person_table, write_text

PEOPLE = [
    "Client ID,First name,Surname,DOB,Phone,Postcode,Consent",
    "00123,Zoë,Brown,25/12/1980,07700 900123,m14 5ab,Yes",
    "00456,Siân,Jones,03/04/1981,07700 9001234 5,M15 6BB,No",
    "00789,José,Patel,13/01/1990,,M20 1AA,yes",
    "00789,José,Patel,13/01/1990,,M20 1AA,yes",
]
ENGAGEMENTS = [
    "Client ID;Programme;Status;Start;End",
    "00123;Tenancy Support;Open;10/01/2025;",
    "00456;Money Help;Closed ;01/02/2025;15/03/2025",
    "00789;Tenancy Support;On hold;2025-02-01;",
]
OUTCOMES = [
    "Client ID\tOutcome\tStatus\tDate\tScore",
    "00123\tTenancy sustained\tAchieved\t01/03/2025\t3",
    "00456\tDebt reduced\tYes\t10/03/2025\tlots",
]


def _member(tmp_path: Path) -> Member:
    data = tmp_path / "acme_trust"  # a member reads only a folder named after it
    data.mkdir(exist_ok=True)
    people = write_text(data / "people.csv", PEOPLE)
    write_text(data / "engagements.csv", ENGAGEMENTS)
    outcomes = write_text(data / "outcomes.csv", OUTCOMES)
    return member(
        tmp_path,
        {
            "person": person_table(people),
            "engagement": {
                "file": "../acme_trust/engagements.csv",
                "columns": {
                    "person_source_id": "client id",
                    "programme": "Programme",
                    "status": "Status",
                    "start_date": "Start",
                    "end_date": "End",
                },
            },
            "outcome": {
                "file": str(outcomes),
                "columns": {
                    "person_source_id": "Client ID",
                    "outcome": "Outcome",
                    "status": "Status",
                    "measured_on": "Date",
                    "value": "Score",
                },
            },
        },
        date_order="day_first",
        mappings={
            "programmes": {"Tenancy Support": "housing", "Money Help": "financial_inclusion"},
            "engagement_status": {"Open": "active", "Closed": "completed"},
            "outcomes": {"Tenancy sustained": "tenancy_sustained"},
            "outcome_status": {"Achieved": "achieved"},
        },
    )


def _pipeline(m: Member, tmp_path: Path) -> dlt.Pipeline:
    return raw_pipeline(
        m, dlt.destinations.duckdb(str(tmp_path / "warehouse.duckdb")), tmp_path / "pipelines"
    )


def _run(m: Member, tmp_path: Path) -> list[str]:
    pipeline = _pipeline(m, tmp_path)
    changed = changed_tables(m, pipeline)
    if changed:
        pipeline.run(spreadsheet_source(m).with_resources(*changed))
    return changed


def _query(tmp_path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_load_types_quarantine_unchanged_and_changed_files(tmp_path: Path) -> None:
    m = _member(tmp_path)
    assert sorted(_run(m, tmp_path)) == [
        "spreadsheet__engagement",
        "spreadsheet__outcome",
        "spreadsheet__person",
        "spreadsheet__programme",
    ]
    people = _query(
        tmp_path,
        "SELECT source_id, given_name, birth_date::TEXT, phone, postcode, "
        "consent_to_share, _source_file, _source_row, _dlt_load_id IS NOT NULL "
        "FROM raw_acme_trust.spreadsheet__person ORDER BY _source_row",
    )
    assert people == [
        ("00123", "Zoë", "1980-12-25", "+447700900123", "M14 5AB", True, "people.csv", 2, True),
        ("00456", "Siân", "1981-04-03", None, "M15 6BB", False, "people.csv", 3, True),
        ("00789", "José", "1990-01-13", None, "M20 1AA", True, "people.csv", 4, True),
    ]
    quarantine = _query(
        tmp_path,
        "SELECT entity, source_file, source_row, source_id, "
        "column_name, raw_value, severity FROM "
        "raw_acme_trust.spreadsheet__person_quarantine ORDER BY source_row",
    )
    assert quarantine == [
        ("person", "people.csv", 3, "00456", "Phone", "07700 9001234 5", "warning"),
        ("person", "people.csv", 5, "00789", "Client ID", "00789", "error"),
    ]
    types = dict(
        _query(
            tmp_path,
            "SELECT table_name || '.' || column_name, data_type FROM "
            "information_schema.columns WHERE table_schema = 'raw_acme_trust'",
        )
    )
    for entity in ("person", "engagement", "outcome", "programme"):
        for column in RAW_COLUMNS[entity]:
            assert f"spreadsheet__{entity}.{column}" in types, column
    assert types["spreadsheet__person.source_id"] == "VARCHAR"
    assert types["spreadsheet__person.source_updated_at"] == "TIMESTAMP"  # typed though empty
    assert types["spreadsheet__outcome.programme"] == "VARCHAR"
    assert types["spreadsheet__outcome.value"] == "DOUBLE"
    assert types["spreadsheet__engagement.end_date"] == "DATE"
    assert _query(
        tmp_path,
        "SELECT status, programme, end_date::TEXT FROM "
        "raw_acme_trust.spreadsheet__engagement ORDER BY _source_row",
    ) == [
        ("Open", "Tenancy Support", None),
        ("Closed", "Money Help", "2025-03-15"),
        ("On hold", "Tenancy Support", None),
    ]
    assert _query(
        tmp_path, "SELECT value FROM raw_acme_trust.spreadsheet__outcome ORDER BY _source_row"
    ) == [(3.0,), (None,)]
    assert _query(
        tmp_path,
        "SELECT * EXCLUDE (_dlt_load_id) FROM raw_acme_trust.spreadsheet__programme ORDER BY 1",
    ) == [
        ("Money Help", "Money Help", "financial_inclusion"),
        ("Tenancy Support", "Tenancy Support", "housing"),
    ]
    first_loads = _query(
        tmp_path, "SELECT DISTINCT _dlt_load_id FROM raw_acme_trust.spreadsheet__person"
    )

    # Second run, nothing changed: nothing is loaded and every table keeps its rows, even
    # from a fresh pipelines folder (state comes back from the warehouse).
    assert _run(m, tmp_path) == []
    (tmp_path / "pipelines").rename(tmp_path / "old_pipelines")
    assert _run(m, tmp_path) == []
    assert _query(tmp_path, "SELECT count(*) FROM raw_acme_trust.spreadsheet__person") == [(3,)]
    assert (
        _query(tmp_path, "SELECT DISTINCT _dlt_load_id FROM raw_acme_trust.spreadsheet__person")
        == first_loads
    )

    # The person file changes: only it reloads; removed rows and fixed problems disappear.
    write_text(m.resolve(Path(m.connector.tables["person"].file)), PEOPLE[:2])
    assert _run(m, tmp_path) == ["spreadsheet__person"]
    assert _query(tmp_path, "SELECT source_id FROM raw_acme_trust.spreadsheet__person") == [
        ("00123",)
    ]
    assert _query(
        tmp_path, "SELECT count(*) FROM raw_acme_trust.spreadsheet__person_quarantine"
    ) == [(0,)]
    assert _query(tmp_path, "SELECT count(*) FROM raw_acme_trust.spreadsheet__engagement") == [(3,)]


def test_config_change_reloads_the_table(tmp_path: Path) -> None:
    m = _member(tmp_path)
    _run(m, tmp_path)
    config = m.config_path.read_text(encoding="utf-8").replace("day_first", "month_first")
    m.config_path.write_text(config, encoding="utf-8")
    from connectors.members import load_member

    changed = changed_tables(load_member(m.config_path), _pipeline(m, tmp_path))
    assert "spreadsheet__person" in changed and "spreadsheet__programme" not in changed


def test_building_the_source_reads_no_file(tmp_path: Path) -> None:
    m = member(tmp_path, {"person": person_table(tmp_path / "not_yet.csv")})
    source = spreadsheet_source(m)  # must not raise: Dagster builds it at definition load
    assert set(source.resources) == {"spreadsheet__person", "spreadsheet__programme"}


def test_unreadable_file_fails_the_load_with_one_clear_error(tmp_path: Path) -> None:
    m = member(tmp_path, {"person": person_table(tmp_path / "missing.csv")})
    pipeline = _pipeline(m, tmp_path)
    with pytest.raises(SpreadsheetError) as info:
        changed_tables(m, pipeline)
    assert info.value.org_id == "acme_trust" and "missing.csv" in info.value.path
    with pytest.raises(PipelineStepFailed) as failed:
        pipeline.run(spreadsheet_source(m))
    cause: BaseException | None = failed.value
    while cause is not None and not isinstance(cause, SpreadsheetError):
        cause = cause.__cause__ or cause.__context__
    assert isinstance(cause, SpreadsheetError)
    assert "file not found" in cause.problem


def test_check_member_reports_counts_columns_and_unmapped_labels(tmp_path: Path) -> None:
    m = _member(tmp_path)
    report = check_member(m)
    assert report.ok
    tables = {t.entity: t for t in report.tables}
    person, engagement, outcome = tables["person"], tables["engagement"], tables["outcome"]
    assert (person.encoding, person.delimiter, person.header_row) == ("utf-8", ",", 1)
    assert (person.rows_loaded, person.rows_rejected, person.rows_with_warnings) == (3, 1, 1)
    assert {(r.severity, r.code) for r in person.reasons} == {
        ("error", "duplicate_id"),
        ("warning", "invalid_phone"),
    }
    assert engagement.delimiter == ";" and outcome.delimiter == "\t"
    unmapped = {(u.mapping, u.label, u.rows) for t in report.tables for u in t.unmapped}
    assert unmapped == {
        ("engagement_status", "On hold", 1),
        ("outcomes", "Debt reduced", 1),
        ("outcome_status", "Yes", 1),
    }  # 'Closed ' maps to 'Closed' (case and spaces ignored)
    text = report.render(show_values=False)
    assert "mappings.engagement_status" in text and "On hold" in text
    for personal in ("Zoë", "Siân", "07700", "1980", "M14", "00123", "00789"):
        assert personal not in text
    assert "row 5, column 'Client ID': 'Client ID' repeats the id" in text
    assert repr(person).count("00789") == 0  # the report's repr carries no values


def test_check_member_reports_unreadable_files_without_raising(tmp_path: Path) -> None:
    people = write_text(tmp_path / "people.csv", ["Client Ref,Name,Consent", "1,A,Yes"])
    columns = {"source_id": "Client ID", "given_name": "Name", "consent_to_share": "Consent"}
    m = member(
        tmp_path,
        {
            "person": person_table(people, columns),
            "outcome": {
                "file": str(tmp_path / "gone.xlsx"),
                "columns": {
                    "person_source_id": "Client",
                    "outcome": "Outcome",
                    "status": "Status",
                    "measured_on": "Date",
                },
            },
        },
    )
    report = check_member(m)
    assert not report.ok
    tables = {t.entity: t for t in report.tables}
    person, outcome = tables["person"], tables["outcome"]
    assert sorted((c.field, c.found, c.suggestion) for c in person.columns) == [
        ("consent_to_share", True, None),
        ("given_name", True, None),
        ("source_id", False, "Client Ref"),
    ]
    assert outcome.problem is not None and "file not found" in outcome.problem
    assert "closest header: 'Client Ref'" in report.render()


def test_check_member_reports_rows_naming_unknown_people(tmp_path: Path) -> None:
    m = _member(tmp_path)
    write_text(
        tmp_path / "acme_trust" / "outcomes.csv",
        [*OUTCOMES, "00999\tDebt reduced\tYes\t1/3/2025\t1"],
    )
    tables = {t.entity: t for t in check_member(m).tables}
    assert tables["outcome"].orphan_rows == 1
    assert tables["outcome"].orphan_examples == ["00999"]
    assert tables["engagement"].orphan_rows == 0  # leading zeros kept: 00123 is known
    assert "1 row names a person not in the people file (e.g. '00999')" in check_member(m).render()


def test_check_member_lists_the_rows_to_fix_with_their_values(tmp_path: Path) -> None:
    """Issue #19 item 11: the member sees which rows to fix, and what is in them."""
    m = _member(tmp_path)
    bad = [f"{900 + n},Bad{n},Row,31/02/1990,,,Yes" for n in range(12)]  # no 31 February
    write_text(
        tmp_path / "acme_trust" / "people.csv",
        [*PEOPLE, *bad, '01000,"Ann,Lee,01/02/1985,,,Yes', "01001,Ben,Ray,01/02/1985,,,Yes"],
    )
    report = check_member(m)
    person = next(t for t in report.tables if t.entity == "person")
    assert person.rows_rejected == 14
    shown = [(p.row, p.column, p.value) for p in person.rejected_examples]
    assert shown == [(5, "Client ID", "00789")] + [
        (row, "DOB", "31/02/1990") for row in range(6, 15)
    ]
    text = report.render()
    assert "rows rejected (first 10 of 14; fix them in the file):" in text
    assert "row 5, column 'Client ID' = '00789': 'Client ID' repeats the id" in text
    assert "row 6, column 'DOB' = '31/02/1990': this date does not exist" in text
    assert "row 15," not in text
    assert "rows losing a value (all 1; fix them in the file):" in text
    assert "row 3, column 'Phone' = '07700 9001234 5': not a phone number" in text
    assert "Zoë" not in text  # rows that load are not listed
    hidden = report.render(show_values=False)
    assert "31/02/1990" not in hidden and "row 6, column 'DOB': this date" in hidden


def test_check_shows_a_swallowed_row_on_one_line(tmp_path: Path) -> None:
    m = _member(tmp_path)
    write_text(
        tmp_path / "acme_trust" / "people.csv",
        [*PEOPLE[:2], '01000,"Ann,Lee,01/02/1985,,,Yes', "01001,Ben,Ray,01/02/1985,,,Yes"],
    )
    text = check_member(m).render()
    assert "row 3, column 'First name' = 'Ann,Lee,01/02/1985,,,Yes⏎01001,Ben,Ray,01/02/" in text
    assert "so line 4 of the file was read into this one cell" in text
