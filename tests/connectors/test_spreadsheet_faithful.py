"""Member files are never corrupted silently (issue #19, items 8 and 9).

Each case is written as members' programs produce it: Excel on Windows with regional
settings, LibreOffice, Google Sheets, CRM exports. A value is read correctly, or its row is
rejected (or the value dropped) with the row, the column and the reason; never guessed.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from connectors.errors import SpreadsheetError
from connectors.members import Member
from connectors.spreadsheets import Issue, check_member, open_table
from tests.connectors.spreadsheet_helpers import member, person_table, read_rows, write_text

HEADER = "Client ID,First name,Surname,DOB,Phone,Postcode,Consent"


def _people(tmp_path: Path, lines: list[str], **extra: Any) -> Member:
    path = write_text(tmp_path / "people.csv", lines)
    return member(tmp_path, {"person": person_table(path)}, date_order="day_first", **extra)


def _by_row(issues: list[Issue]) -> dict[int, tuple[str, str | None, str]]:
    return {i.source_row: (i.severity, i.column_name, i.code) for i in issues}


# --- item 8: never corrupt silently -------------------------------------------------------


def test_an_unclosed_quote_rejects_the_row_that_swallowed_the_next_rows(tmp_path: Path) -> None:
    m = _people(
        tmp_path,
        [
            HEADER,
            '1,"Ann,Lee,01/02/1985,,M14 5AB,Yes',  # the quote is never closed on this line
            "2,Ben,Ray,01/02/1985,,M14 5AB,Yes",
            "3,Cat,Fox,01/02/1985,,M14 5AB,Yes",
            '4,Dan,"Orr,01/02/1985,,M14 5AB,Yes',  # ... until this stray one
            "5,Eve,Ng,01/02/1985,,M14 5AB,Yes",
        ],
    )
    rows, issues = read_rows(m)
    assert [r["source_id"] for r in rows] == ["5"]  # nobody is loaded with a swallowed name
    (issue,) = issues
    assert (issue.source_row, issue.severity, issue.code) == (2, "error", "unclosed_quote")
    assert issue.column_name == "First name" and issue.source_id == "1"
    assert "lines 3-5" in issue.reason and "stray quote" in issue.reason
    assert issue.raw_value is not None and "2,Ben,Ray" in issue.raw_value  # nothing lost
    person = check_member(m).tables[0]
    assert (person.rows_loaded, person.rows_rejected) == (1, 1)


def test_a_note_with_line_breaks_is_still_one_cell(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "people.csv",
        ["Client ID,First name,Notes", '1,Ann,"Flat 2, High St', 'Leeds, LS1"', "2,Ben,ok"],
    )
    columns = {"source_id": "Client ID", "given_name": "First name"}
    m = member(tmp_path, {"person": person_table(path, columns)}, sharing={"consent": "none"})
    rows, issues = read_rows(m)
    assert [r["given_name"] for r in rows] == ["Ann", "Ben"] and issues == []


@pytest.mark.parametrize("second", [" email ", "EMAIL", "E-mail"])
def test_a_header_that_matches_two_columns_stops_the_table(tmp_path: Path, second: str) -> None:
    path = write_text(
        tmp_path / "people.csv", [f"Client ID,Email,Phone,{second}", "1,a@example.org,,b@x.org"]
    )
    columns = {"source_id": "Client ID", "email": "e mail"}
    m = member(tmp_path, {"person": person_table(path, columns)}, sharing={"consent": "none"})
    with pytest.raises(SpreadsheetError) as info:
        open_table(m, "person")
    assert "matches 2 columns" in info.value.problem
    assert (
        f"'{second.strip()}' (column D)" in info.value.problem
        and "(column B)" in info.value.problem
    )
    report = check_member(m)
    assert not report.ok and "✗ person" in report.render()
    # The header written exactly as one of them settles it, when only one is written so.
    exact = member(
        tmp_path,
        {"person": person_table(path, {"source_id": "Client ID", "email": "Email"})},
        sharing={"consent": "none"},
    )
    if second.strip().casefold() != "email":
        rows, _ = read_rows(exact)
        assert rows[0]["email"] == "a@example.org"
    else:
        with pytest.raises(SpreadsheetError, match="matches 2 columns"):
            open_table(exact, "person")


def test_spreadsheet_error_values_are_reported_not_read_as_blanks_or_names(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Client ID", "First name", "DOB", "Consent"])
    sheet.append(["1", "Ann", "1985-02-01", "Yes"])
    sheet.append(["2", "Ben", "1985-02-01", "Yes"])
    sheet.append(["3", "Cat", "1985-02-01", "Yes"])
    for ref, error in (("B3", "#DIV/0!"), ("C4", "#N/A")):
        sheet[ref] = error
        sheet[ref].data_type = "e"  # an error cell, as Excel saves a failed formula
    book.save(tmp_path / "people.xlsx")
    columns = {
        "source_id": "Client ID",
        "given_name": "First name",
        "birth_date": "DOB",
        "consent_to_share": "Consent",
    }
    m = member(tmp_path, {"person": person_table(tmp_path / "people.xlsx", columns)})
    rows, issues = read_rows(m)
    assert [(r["source_id"], r["given_name"]) for r in rows] == [("1", "Ann"), ("2", None)]
    assert _by_row(issues) == {
        3: ("warning", "First name", "spreadsheet_error"),  # the name is dropped, and said
        4: ("error", "DOB", "spreadsheet_error"),  # a date is never left out silently
    }
    assert {i.raw_value for i in issues} == {"#DIV/0!", "#N/A"}
    # The same values as text in CSV exports: Excel, Google Sheets, LibreOffice.
    csv_rows, csv_issues = read_rows(
        _people(
            tmp_path,
            [
                HEADER,
                "1,#DIV/0!,Lee,01/02/1985,,,Yes",
                "2,Ben,#ERROR!,01/02/1985,,,Yes",
                "3,Cat,Fox,Err:502,,,Yes",
                "4,#1 Fan,Ng,01/02/1985,,,Yes",  # text that merely starts with '#'
            ],
        )
    )
    assert _by_row(csv_issues) == {
        2: ("warning", "First name", "spreadsheet_error"),
        3: ("warning", "Surname", "spreadsheet_error"),
        4: ("error", "DOB", "spreadsheet_error"),
    }
    assert [r["given_name"] for r in csv_rows] == [None, "Ben", "#1 Fan"]


def _deliveries(tmp_path: Path, quantities: list[str], **table: Any) -> Member:
    people = write_text(tmp_path / "people.csv", ["Client ID", "1"])
    sessions = write_text(
        tmp_path / "sessions.csv",
        ["Client;Programme;Date;Hours"]
        + [f"1;Food;2025-01-0{i + 1};{q}" for i, q in enumerate(quantities)],
    )
    return member(
        tmp_path,
        {
            "person": person_table(people, {"source_id": "Client ID"}),
            "service_delivery": {
                "file": str(sessions),
                "columns": {
                    "person_source_id": "Client",
                    "programme": "Programme",
                    "delivered_on": "Date",
                    "quantity": "Hours",
                },
                **table,
            },
        },
        sharing={"consent": "none"},
    )


def test_decimal_commas_are_read_as_decimals_never_as_thousands(tmp_path: Path) -> None:
    rows, issues = read_rows(_deliveries(tmp_path, ["1.234,50", "1,5", "2"]), "service_delivery")
    assert [r["quantity"] for r in rows] == [1234.5, 1.5, 2.0] and issues == []


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        (["1,234", "2,5"], [1.234, 2.5]),  # the column writes decimal commas
        (["1,234", "2.5"], [1234.0, 2.5]),  # the column writes decimal points
        (["1.234", "0,75"], [1234.0, 0.75]),  # decimal commas: the point groups thousands
    ],
)
def test_an_ambiguous_number_is_settled_by_the_columns_other_values(
    tmp_path: Path, column: list[str], expected: list[float]
) -> None:
    rows, issues = read_rows(_deliveries(tmp_path, column), "service_delivery")
    assert [r["quantity"] for r in rows] == expected and issues == []


def test_an_ambiguous_number_nothing_settles_is_flagged_not_guessed(tmp_path: Path) -> None:
    rows, issues = read_rows(_deliveries(tmp_path, ["1,234", "7"]), "service_delivery")
    assert [r["quantity"] for r in rows] == [None, 7.0]
    (issue,) = issues
    assert (issue.source_row, issue.severity, issue.column_name) == (2, "warning", "Hours")
    assert issue.code == "ambiguous_number" and "decimal_separator" in issue.reason
    mixed, mixed_issues = read_rows(
        _deliveries(tmp_path, ["1,234", "2,5", "3.5"]), "service_delivery"
    )
    assert [r["quantity"] for r in mixed] == [None, 2.5, 3.5]
    assert "1 number(s) written with a decimal point and 1 with a decimal comma" in (
        mixed_issues[0].reason
    )
    # The member's setting decides, and a number that does not fit it is flagged.
    declared, flagged = read_rows(
        _deliveries(tmp_path, ["1,234", "2.5"], decimal_separator=","), "service_delivery"
    )
    assert [r["quantity"] for r in declared] == [1.234, None]
    assert [i.code for i in flagged] == ["number_separator_mismatch"]


def test_an_id_excel_turned_into_scientific_notation_is_never_an_id(tmp_path: Path) -> None:
    rows, issues = read_rows(
        _people(tmp_path, [HEADER, "1.23457E+11,Ann,Lee,,,,Yes", "123456789012,Ben,Ray,,,,Yes"])
    )
    assert [r["source_id"] for r in rows] == ["123456789012"]
    assert _by_row(issues) == {2: ("error", "Client ID", "id_scientific_notation")}
    book = openpyxl.Workbook()
    book.active.append(["Client ID", "Consent"])
    book.active.append([1234567890123456789, "Yes"])  # 19 digits: Excel keeps 15
    book.active.append([123456789012, "Yes"])
    book.save(tmp_path / "ids.xlsx")
    m = member(
        tmp_path,
        {"person": person_table(tmp_path / "ids.xlsx", {"source_id": "Client ID"})},
        sharing={"consent": "none"},
    )
    rows, issues = read_rows(m)
    assert [r["source_id"] for r in rows] == ["123456789012"]
    assert _by_row(issues) == {2: ("error", "Client ID", "id_digits_lost")}


def test_valid_emails_with_apostrophes_and_plus_are_kept(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "people.csv",
        [
            "Client ID,Email",
            "1,Siobhan.O'Brien+news@Example.org",
            "2,d'arcy@example.co.uk",
            "3,not an address",
            "4,ann@example'.org",
        ],
    )
    columns = {"source_id": "Client ID", "email": "Email"}
    m = member(tmp_path, {"person": person_table(path, columns)}, sharing={"consent": "none"})
    rows, issues = read_rows(m)
    assert [r["email"] for r in rows] == [
        "siobhan.o'brien+news@example.org",
        "d'arcy@example.co.uk",
        None,
        None,
    ]
    assert _by_row(issues) == {
        4: ("warning", "Email", "invalid_email"),
        5: ("warning", "Email", "invalid_email"),
    }


def test_a_phone_without_its_leading_zero_is_not_guessed(tmp_path: Path) -> None:
    rows, issues = read_rows(
        _people(
            tmp_path,
            [
                HEADER,
                "1,A,B,,7700900123,,Yes",  # a CSV cell that lost its 0 in Excel
                "2,A,B,,0770090012,,Yes",  # 9 national digits: no UK mobile is that short
                "3,A,B,,07700 900123,,Yes",
                "4,A,B,,+44 20 7946 0764,,Yes",
                "5,A,B,,0169 77 2345,,Yes",  # a real 9-digit UK number (Brampton)
                "6,A,B,,12,,Yes",  # no number at all, with or without a 0
            ],
        )
    )
    assert [r["phone"] for r in rows] == [
        None,
        None,
        "+447700900123",
        "+442079460764",
        "+44169772345",  # valid for its area: kept
        None,
    ]
    assert _by_row(issues) == {
        2: ("warning", "Phone", "phone_without_leading_zero"),
        3: ("warning", "Phone", "invalid_phone"),
        7: ("warning", "Phone", "invalid_phone"),
    }
    assert "leading 0" in issues[0].reason and "7700900123" not in issues[0].reason


# --- item 9: headers and text as people type them ----------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "client_id,first_name,SURNAME,d.o.b.,phone-number,post code,consent?",
        "CLIENTID,FIRSTNAME,Surname,DOB,Phone_Number,PostCode,Consent",
        "Client ID,First Name,Surname,D-O-B,Phone Number,Post-code,CONSENT",
    ],
)
def test_headers_match_ignoring_case_spaces_and_punctuation(tmp_path: Path, header: str) -> None:
    columns = {
        "source_id": "Client ID",
        "given_name": "First name",
        "family_name": "Surname",
        "birth_date": "DOB",
        "phone": "Phone number",
        "postcode": "Postcode",
        "consent_to_share": "Consent",
    }
    path = write_text(tmp_path / "people.csv", [header, "1,Ann,Lee,01/02/1985,,M14 5AB,Yes"])
    m = member(tmp_path, {"person": person_table(path, columns)}, date_order="day_first")
    rows, issues = read_rows(m)
    assert issues == [] and rows[0]["given_name"] == "Ann" and rows[0]["postcode"] == "M14 5AB"


def test_text_is_nfc_without_invisible_characters_and_whitespace_rows_are_blank(
    tmp_path: Path,
) -> None:
    decomposed = "Zoe\u0308"  # as a Mac types it: e + combining diaeresis
    m = _people(
        tmp_path,
        [
            HEADER,
            f"1,{decomposed},\u200bBrown\u200b,01/02/1985,,,Yes",
            "\ufeff2,Ann,Lee,01/02/1985,,,Yes",  # a stray BOM: two exports pasted together
            "  ,\t, ,  ,\u00a0,\u200b,  ",  # spaces only: not a row, not an error
            "3,Bob,\u200d,01/02/1985,,,Yes",
        ],
    )
    rows, issues = read_rows(m)
    assert issues == []
    assert [(r["source_id"], r["given_name"], r["family_name"]) for r in rows] == [
        ("1", "Zoë", "Brown"),
        ("2", "Ann", "Lee"),
        ("3", "Bob", None),
    ]
    assert len(rows[0]["given_name"]) == 3  # ë is one code point, as typed on Windows


def test_fields_longer_than_the_csv_default_limit_are_read(tmp_path: Path) -> None:
    long_note = "word " * 40_000  # 200,000 characters, over csv's default 131,072
    path = write_text(
        tmp_path / "people.csv",
        ["Client ID;First name;Notes", f'1;Ann;"{long_note}"', "2;Ben;short"],
    )
    columns = {"source_id": "Client ID", "given_name": "First name"}
    m = member(tmp_path, {"person": person_table(path, columns)}, sharing={"consent": "none"})
    rows, issues = read_rows(m)
    assert [r["given_name"] for r in rows] == ["Ann", "Ben"] and issues == []


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "a PDF document"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "a PNG image"),
        (bytes(range(256)) * 8, "binary data"),
        (b"<html><body><table><tr><td>Client ID</td></tr></table></body></html>", "web page"),
    ],
)
def test_a_file_that_is_not_text_is_refused_with_the_fix(
    tmp_path: Path, content: bytes, what: str
) -> None:
    (tmp_path / "people.csv").write_bytes(content)
    m = member(
        tmp_path,
        {"person": person_table(tmp_path / "people.csv", {"source_id": "Client ID"})},
        sharing={"consent": "none"},
    )
    with pytest.raises(SpreadsheetError) as info:
        open_table(m, "person")
    assert what in info.value.problem
    assert "export the data as CSV" in info.value.fix
    report = check_member(m)
    assert not report.ok and what in report.render()


def _moved_sheet(source: Path, target: Path, part: str) -> Path:
    """The same workbook with its sheet stored at ``part``, named so by the relationships:
    as valid to the reader as the original."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as out:
        for item in src.infolist():
            data = src.read(item.filename)
            name = item.filename
            if name == "xl/worksheets/sheet1.xml":
                name = part
            elif name in ("xl/_rels/workbook.xml.rels", "[Content_Types].xml"):
                data = data.replace(b"/xl/worksheets/sheet1.xml", b"/" + part.encode())
                data = data.replace(b"worksheets/sheet1.xml", b"/" + part.encode())
            out.writestr(name, data)
    return target


@pytest.mark.parametrize("part", ["xl/Data/People.xml", "XL/WORKSHEETS/SHEET1.XML"])
def test_a_sheet_stored_elsewhere_is_still_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, part: str
) -> None:
    book = openpyxl.Workbook()
    book.active["A1"] = "Client ID"
    book.active["A2"] = "1"
    book.active["Z500"] = "far"
    book.save(tmp_path / "original.xlsx")
    moved = _moved_sheet(tmp_path / "original.xlsx", tmp_path / "people.xlsx", part)
    m = member(
        tmp_path,
        {"person": person_table(moved, {"source_id": "Client ID"})},
        sharing={"consent": "none"},
    )
    rows, _ = read_rows(m)  # the reader finds the sheet where the relationships say
    assert [r["source_id"] for r in rows] == ["1"]
    monkeypatch.setenv("HUB_MAX_CELLS", "1000")
    with pytest.raises(SpreadsheetError, match="HUB_MAX_CELLS"):
        open_table(m, "person")


def test_a_libreoffice_error_cell_is_not_read_as_its_stale_number(tmp_path: Path) -> None:
    from tests.connectors.test_bounded_parsing import _ods, _text_cell

    def error(text: str, value_type: str = "float") -> str:
        return (
            f'<table:table-cell table:formula="of:=1/0" office:value-type="{value_type}" '
            f'office:value="0" calcext:value-type="error"><text:p>{text}</text:p>'
            "</table:table-cell>"
        )

    def row(*cells: str) -> str:
        return f"<table:table-row>{''.join(cells)}</table:table-row>"

    path = _ods(
        tmp_path / "sessions.ods",
        '<table:table-row table:number-rows-repeated="2"><table:table-cell/></table:table-row>'
        + row("<table:table-cell/>", _text_cell("Client"), _text_cell("Date"), _text_cell("Hours"))
        + row("<table:table-cell/>", _text_cell("1"), _text_cell("2025-01-02"), error("#DIV/0!"))
        + row(
            '<table:table-cell table:number-columns-repeated="1"/>',
            _text_cell("1"),
            error("Err:502", "string"),
            _text_cell("2"),
        )
        + row("<table:table-cell/>", _text_cell("1"), _text_cell("2025-01-04"), _text_cell("3")),
    )
    people = write_text(tmp_path / "people.csv", ["Client ID", "1"])
    m = member(
        tmp_path,
        {
            "person": person_table(people, {"source_id": "Client ID"}),
            "service_delivery": {
                "file": str(path),
                "columns": {
                    "person_source_id": "Client",
                    "delivered_on": "Date",
                    "quantity": "Hours",
                },
                "defaults": {"programme": "Food"},
            },
        },
        sharing={"consent": "none"},
    )
    rows, issues = read_rows(m, "service_delivery")
    assert [(r["_source_row"], r["quantity"]) for r in rows] == [(4, None), (6, 3.0)]
    assert [(i.source_row, i.severity, i.column_name, i.raw_value) for i in issues] == [
        (4, "warning", "Hours", "#DIV/0!"),  # not 0 hours
        (5, "error", "Date", "Err:502"),
    ]


@pytest.mark.parametrize("suffix", [".xls", ".xlsb"])
def test_binary_workbook_error_cells_are_reported(tmp_path: Path, suffix: str) -> None:
    from tests.connectors.spreadsheet_helpers import XlsbError, write_xlsb

    path = tmp_path / f"people{suffix}"
    cells: list[tuple[int, int, Any]] = [
        (0, 0, "Client ID"),
        (0, 1, "First name"),
        (1, 0, "1"),
        (1, 1, "Ann"),
        (2, 0, "2"),
        (3, 0, "3"),
        (3, 1, "Cat"),
    ]
    if suffix == ".xlsb":
        write_xlsb(path, [*cells, (2, 1, XlsbError(0x07))])
    else:
        import xlwt

        book = xlwt.Workbook()
        sheet = book.add_sheet("People")
        for row, col, value in cells:
            sheet.write(row, col, value)
        sheet.row(2).set_cell_error(1, 0x2A)  # #N/A
        book.save(str(path))
    columns = {"source_id": "Client ID", "given_name": "First name"}
    m = member(tmp_path, {"person": person_table(path, columns)}, sharing={"consent": "none"})
    rows, issues = read_rows(m)
    assert [(r["source_id"], r["given_name"]) for r in rows] == [
        ("1", "Ann"),
        ("2", None),
        ("3", "Cat"),
    ]
    expected = "#DIV/0!" if suffix == ".xlsb" else "#N/A"
    assert [(i.source_row, i.column_name, i.raw_value, i.code) for i in issues] == [
        (3, "First name", expected, "spreadsheet_error")
    ]
