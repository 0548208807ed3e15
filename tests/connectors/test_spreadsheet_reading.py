"""Reading real member files: encodings, delimiters, title blocks, workbooks, bad rows."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from connectors.errors import SpreadsheetError
from connectors.members import Member
from connectors.spreadsheets import open_table, read_entity
from tests.connectors.spreadsheet_helpers import member, person_table, read_rows, write_text

HEADER = "Client ID,First name,Surname,DOB,Phone,Postcode,Consent"
ROWS = [
    "00123,Zoë,Brown,25/12/1980,07700 900123,m14 5ab,Yes",
    "00456,Siân,Jones,1981-02-03,(020) 7946 0764,M15 6BB,No",
    "789,José,Patel,13/01/1990,,M20 1AA,yes",
]


def _people(
    tmp_path: Path, lines: list[str], file_encoding: str = "utf-8", **options: Any
) -> Member:
    path = write_text(tmp_path / "people.csv", lines, file_encoding)
    extra = {k: options.pop(k) for k in ("date_order", "sharing") if k in options}
    return member(
        tmp_path, {"person": person_table(path, **options)}, **{"date_order": "day_first", **extra}
    )


@pytest.mark.parametrize(
    ("encoding", "detected"),
    [
        ("utf-8", "utf-8"),
        ("utf-8-sig", "utf-8-sig"),
        ("cp1252", "cp1252"),
        ("utf-16", "utf-16"),
        ("utf-16-le", "utf-16-le"),
    ],
)
def test_encodings_are_detected_and_accents_survive(
    tmp_path: Path, encoding: str, detected: str
) -> None:
    m = _people(tmp_path, [HEADER, *ROWS], encoding)
    with open_table(m, "person") as opened:
        assert opened.encoding == detected
    rows, issues = read_rows(m)
    assert [r["given_name"] for r in rows] == ["Zoë", "Siân", "José"]
    assert rows[0]["source_id"] == "00123"  # leading zeros kept, never a number
    assert rows[0]["phone"] == "+447700900123" and rows[1]["phone"] == "+442079460764"
    assert rows[0]["postcode"] == "M14 5AB"
    assert rows[0]["birth_date"] == date(1980, 12, 25)
    assert [r["consent_to_share"] for r in rows] == [True, False, True]
    assert [r["_source_row"] for r in rows] == [2, 3, 4]
    assert rows[0]["_source_file"] == "people.csv"
    assert issues == []


def test_declared_encoding_is_used(tmp_path: Path) -> None:
    m = _people(tmp_path, [HEADER, *ROWS], "cp1252", encoding="cp1252")
    rows, _ = read_rows(m)
    assert rows[0]["given_name"] == "Zoë"


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_delimiters_are_sniffed(tmp_path: Path, delimiter: str) -> None:
    lines = [line.replace(",", delimiter) for line in [HEADER, *ROWS]]
    lines[1] = lines[1].replace("Zoë", "Zoë, Jr")  # a comma inside a value must not confuse it
    m = _people(tmp_path, lines)
    with open_table(m, "person") as opened:
        assert opened.delimiter == delimiter
    rows, _ = read_rows(m)
    assert [r["family_name"] for r in rows] == ["Brown", "Jones", "Patel"]
    assert rows[0]["given_name"] == "Zoë, Jr"


def test_header_under_a_title_block_trailing_blanks_and_totals(tmp_path: Path) -> None:
    lines = [
        "Acme Trust client list,,,,,,,,",
        "Exported 05/01/2026,,,,,,,,",
        ",,,,,,,,",
        "  client id , FIRST  NAME,surname,dob,phone,postcode,consent,,",
        f"{ROWS[0]},,",
        ",,,,,,,,",  # interior blank row
        f"{ROWS[1]},,",
        "Client ID,First name,Surname,DOB,Phone,Postcode,Consent,,",  # header repeated
        f"{ROWS[2]},,",
        "Total,3,,,,,,,",
        ",,,,,,,,",
        ",,,,,,,,",
    ]
    m = _people(tmp_path, lines)
    with open_table(m, "person") as opened:
        assert opened.header_row == 4
    rows, issues = read_rows(m)
    assert [r["source_id"] for r in rows] == ["00123", "00456", "789"]
    assert [r["_source_row"] for r in rows] == [5, 7, 9]
    skipped = {(i.source_row, i.code) for i in issues if i.severity == "skipped"}
    assert skipped == {(8, "repeated_header"), (10, "totals_row")}
    assert len(issues) == 2


def test_declared_header_row(tmp_path: Path) -> None:
    m = _people(tmp_path, ["Title", "", HEADER, *ROWS], header_row=3)
    rows, _ = read_rows(m)
    assert len(rows) == 3 and rows[0]["_source_row"] == 4


def test_day_first_and_month_first(tmp_path: Path) -> None:
    lines = [HEADER, "1,A,B,03/04/1980,,,Yes"]
    (day_first, _) = read_rows(_people(tmp_path, lines, date_order="day_first"))
    (month_first, _) = read_rows(_people(tmp_path, lines, date_order="month_first"))
    assert day_first[0]["birth_date"] == date(1980, 4, 3)
    assert month_first[0]["birth_date"] == date(1980, 3, 4)


def test_ambiguous_date_without_date_order_is_quarantined(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "people.csv", [HEADER, "1,A,B,03/04/1980,,,Yes", "2,C,D,25/04/1980,,,Yes"]
    )
    m = member(tmp_path, {"person": person_table(path)})  # no date_order
    rows, issues = read_rows(m)
    assert [r["source_id"] for r in rows] == ["2"]  # 25/04 has only one reading
    (issue,) = issues
    assert (issue.severity, issue.source_row, issue.source_id) == ("error", 2, "1")
    assert issue.column_name == "DOB" and issue.raw_value == "03/04/1980"
    assert "ambiguous" in issue.reason and "connector.date_order" in issue.reason


def test_bad_values_warn_or_reject(tmp_path: Path) -> None:
    lines = [
        HEADER,
        "1,Ann,Lee,01/02/85,07700 900123,M14 5AB,Yes",  # two-digit year: rejected
        "2,Ben,Ray,01/02/1985,07700 9001234 5,M14 5AB,Yes",  # bad phone: dropped, row kept
        "3,Cat,Fox,01/02/1985,07700 900124,M14 5AB,Maybe",  # unknown consent word: False
        ",Dan,Orr,01/02/1985,07700 900125,M14 5AB,Yes",  # no id: rejected
        "2,Eve,Ng,01/02/1985,07700 900126,M14 5AB,Yes",  # duplicate of row 3: rejected
    ]
    rows, issues = read_rows(_people(tmp_path, lines))
    assert [(r["source_id"], r["phone"], r["consent_to_share"]) for r in rows] == [
        ("2", None, True),
        ("3", "+447700900124", False),
    ]
    found = {(i.source_row, i.severity, i.code) for i in issues}
    assert found == {
        (2, "error", "two_digit_year"),
        (3, "warning", "invalid_phone"),
        (4, "warning", "unrecognised_consent"),
        (5, "error", "missing_source_id"),
        (6, "error", "duplicate_id"),
    }
    duplicate = next(i for i in issues if i.code == "duplicate_id")
    assert "row 3" in duplicate.reason and duplicate.source_id == "2"


def test_sharing_all_sets_consent_without_a_column(tmp_path: Path) -> None:
    columns = {"source_id": "Client ID", "given_name": "First name"}
    path = write_text(tmp_path / "people.csv", [HEADER, *ROWS])
    m = member(tmp_path, {"person": person_table(path, columns)}, sharing={"consent": "all"})
    rows, _ = read_rows(m)
    assert all(r["consent_to_share"] is True for r in rows)


def test_sharing_all_fills_only_blanks_and_an_explicit_no_stays_no(tmp_path: Path) -> None:
    """`consent: all` once turned explicit "No" answers into consent, silently (issue #18)."""
    from connectors.spreadsheets.check import check_member

    columns = {"source_id": "Client ID", "consent_to_share": "Consent"}
    path = write_text(
        tmp_path / "people.csv",
        ["Client ID,Consent", "1,Yes", "2,No", "3,", "4,  ", "5,declined", "6,maybe"],
    )
    m = member(tmp_path, {"person": person_table(path, columns)}, sharing={"consent": "all"})
    rows, issues = read_rows(m)
    assert {r["source_id"]: r["consent_to_share"] for r in rows} == {
        "1": True,
        "2": False,  # an explicit no stays no
        "3": True,  # no answer: the member's policy fills it in
        "4": True,
        "5": False,
        "6": False,  # an unknown word is not consent (and is reported)
    }
    assert [i.source_row for i in issues if i.severity == "warning"] == [7]
    report = check_member(m).render()
    assert (
        "consent (sharing.consent: all): 2 people with no answer counted as consenting; "
        "1 answered yes; 3 answered no and stay not consenting" in report
    )
    per_record = member(tmp_path, {"person": person_table(path, columns)})
    assert (
        "consent (per record): 1 people consent to sharing, 5 do not"
        in check_member(per_record).render()
    )


def _workbook(path: Path) -> Path:
    book = openpyxl.Workbook()
    notes = book.active
    notes.title = "Notes"
    notes["A1"] = "Nothing to see here"
    sheet = book.create_sheet("Clients")
    sheet.append(["Acme Trust register"])
    sheet.append([])
    sheet.append(["Client ID", "First name", "Surname", "DOB", "Phone", "Postcode", "Consent"])
    sheet.append([123, "Zoë", "Brown", date(1980, 12, 25), "07700900123", "M14 5AB", "Y"])
    sheet.append(["000456", "Siân", "Jones", 29649, 7700900124, "M15 6BB", "N"])  # serial 29649
    sheet.append(["789", "José", "Patel", "13/01/1990", None, "M20 1AA", "Y"])
    sheet.append(["790", "Ann", "Lee", datetime(1975, 6, 1, 9, 30), None, None, "Y"])
    sheet.append([])
    sheet.append(["Grand total", 4])
    book.save(path)
    return path


def test_xlsx_dates_serials_text_and_ids(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "register.xlsx")
    columns = {
        "source_id": "client id",
        "given_name": "first name",
        "birth_date": "DOB",
        "phone": "Phone",
        "consent_to_share": "Consent",
    }
    m = member(
        tmp_path, {"person": person_table(path, columns, sheet="clients")}, date_order="day_first"
    )
    with open_table(m, "person") as opened:
        assert (opened.sheet, opened.header_row) == ("Clients", 3)
    rows, issues = read_rows(m)
    assert [r["source_id"] for r in rows] == ["123", "000456", "789", "790"]
    assert [r["birth_date"] for r in rows] == [
        date(1980, 12, 25),
        date(1981, 3, 4),
        date(1990, 1, 13),
        date(1975, 6, 1),
    ]
    assert rows[1]["phone"] == "+447700900124"  # a number cell that lost its leading 0
    assert [r["_source_row"] for r in rows] == [4, 5, 6, 7]
    assert [(i.source_row, i.severity, i.raw_value) for i in issues] == [
        (9, "skipped", "Grand total")
    ]


def test_unknown_sheet_lists_the_sheets(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "register.xlsx")
    m = member(tmp_path, {"person": person_table(path, sheet="People")}, date_order="day_first")
    with pytest.raises(SpreadsheetError) as info:
        open_table(m, "person")
    assert "'Notes', 'Clients'" in info.value.problem
    assert "sheet" in info.value.fix


def test_missing_file_names_member_file_and_fix(tmp_path: Path) -> None:
    m = member(tmp_path, {"person": person_table(tmp_path / "nowhere.csv")})
    with pytest.raises(SpreadsheetError) as info:
        list(read_entity(m, "person"))
    err = info.value
    assert err.org_id == "acme_trust" and err.path.endswith("nowhere.csv")
    assert "not found" in err.problem and "connector.tables.person.file" in err.fix
    assert "acme_trust" in str(err) and "Fix:" in str(err)


def test_not_a_spreadsheet(tmp_path: Path) -> None:
    fake = tmp_path / "people.xlsx"
    fake.write_text("this is not a workbook", encoding="utf-8")
    m = member(tmp_path, {"person": person_table(fake)})
    with pytest.raises(SpreadsheetError, match="not a readable spreadsheet"):
        open_table(m, "person")
    renamed = tmp_path / "people.csv"
    _workbook(tmp_path / "real.xlsx").rename(renamed)
    m = member(tmp_path, {"person": person_table(renamed)})
    with pytest.raises(SpreadsheetError, match="Excel workbook saved under a CSV name"):
        open_table(m, "person")


def test_missing_column_lists_headers_and_closest_match(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "people.csv", ["Client ID,First name,Surname,Date of birth", "1,A,B,1980-01-01"]
    )
    columns = {
        "source_id": "CLIENT  id",
        "given_name": "first name",
        "birth_date": "DOB",
        "family_name": "Surnme",
        "consent_to_share": "Client ID",
    }
    m = member(tmp_path, {"person": person_table(path, columns)})
    with pytest.raises(SpreadsheetError) as info:
        open_table(m, "person")
    problem = info.value.problem
    assert "'Surnme' (for family_name) (closest: 'Surname')" in problem
    assert "'DOB' (for birth_date)" in problem
    assert "Headers found: 'Client ID', 'First name', 'Surname', 'Date of birth'" in problem
    assert "connector.tables.person.columns" in info.value.fix


def test_no_header_row(tmp_path: Path) -> None:
    path = write_text(tmp_path / "people.csv", ["a,b,c", "1,2,3"])
    m = member(tmp_path, {"person": person_table(path)})
    with pytest.raises(SpreadsheetError, match="no header row found"):
        open_table(m, "person")


def test_derived_ids_are_stable_and_number_repeats(tmp_path: Path) -> None:
    people = write_text(tmp_path / "people.csv", [HEADER, *ROWS])
    sessions = write_text(
        tmp_path / "sessions.csv",
        [
            "Client,Programme,Date",
            "00123,Food Bank,2025-01-02",
            "00123,Food Bank,2025-01-02",
            "00456,food  bank,2025-01-02",
        ],
    )
    table = {
        "file": str(sessions),
        "columns": {"person_source_id": "Client", "programme": "Programme", "delivered_on": "Date"},
    }
    m = member(
        tmp_path,
        {"person": person_table(people), "service_delivery": table},
        date_order="day_first",
    )
    first, _ = read_rows(m, "service_delivery")
    again, _ = read_rows(m, "service_delivery")
    ids = [r["source_id"] for r in first]
    assert ids == [r["source_id"] for r in again]
    assert ids[0].endswith("-1") and ids[1] == ids[0][:-2] + "-2"
    assert ids[2] != ids[0] and len(set(ids)) == 3
    assert first[2]["programme"] == "food  bank"  # labels kept as written (SQL maps them)
