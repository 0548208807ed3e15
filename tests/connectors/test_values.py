"""Cell parsers: dates are never guessed, ids stay text, contact details are normalised."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pytest

from connectors import values as v


def _problem(func: Callable[..., Any], *args: Any, **kwargs: Any) -> v.ValueProblem:
    with pytest.raises(v.ValueProblem) as info:
        func(*args, **kwargs)
    return info.value


@pytest.mark.parametrize(
    ("text", "order", "expected"),
    [
        ("2024-04-03", None, date(2024, 4, 3)),
        ("2024-04-03 14:30:00", None, date(2024, 4, 3)),
        ("2024-04-03T14:30", "day_first", date(2024, 4, 3)),
        ("03/04/2024", "day_first", date(2024, 4, 3)),
        ("03/04/2024", "month_first", date(2024, 3, 4)),
        ("3-4-2024", "day_first", date(2024, 4, 3)),
        ("3.4.2024", "month_first", date(2024, 3, 4)),
        ("25/12/2024", None, date(2024, 12, 25)),  # only one reading exists
        ("12/25/2024", None, date(2024, 12, 25)),
        ("05/05/2024", None, date(2024, 5, 5)),  # both readings are the same day
        ("3 Apr 2024", None, date(2024, 4, 3)),
        ("April 3, 2024", None, date(2024, 4, 3)),
        ("3rd September 2024", "month_first", date(2024, 9, 3)),
        ("03-Apr-2024", None, date(2024, 4, 3)),
        ("45000", None, date(2023, 3, 15)),  # Excel serial typed into a CSV
        (45000.0, None, date(2023, 3, 15)),  # numeric Excel cell in a date column
        (datetime(2024, 4, 3, 10, 0), None, date(2024, 4, 3)),
        (date(2024, 4, 3), None, date(2024, 4, 3)),
        ("", None, None),
    ],
)
def test_dates_read(text: object, order: v.DateOrder, expected: date | None) -> None:
    assert v.parse_date(text, order) == expected


def test_ambiguous_date_without_date_order_is_an_error_naming_the_setting() -> None:
    problem = _problem(v.parse_date, "03/04/2024", None, "acme_trust.yaml")
    assert problem.code == "ambiguous_date"
    assert "ambiguous" in problem.reason
    assert "connector.date_order" in problem.reason and "acme_trust.yaml" in problem.reason


def test_declared_order_that_does_not_fit_is_an_error() -> None:
    problem = _problem(v.parse_date, "04/13/2024", "day_first")
    assert problem.code == "date_order_mismatch"
    assert "day_first" in problem.reason and "month 13" in problem.reason


@pytest.mark.parametrize("text", ["03/04/24", "3 Apr 24"])
def test_two_digit_years_are_rejected(text: str) -> None:
    problem = _problem(v.parse_date, text, "day_first")
    assert problem.code == "two_digit_year"
    assert "year in full" in problem.reason


def test_impossible_dates_and_nonsense_are_errors_without_the_value_in_the_reason() -> None:
    assert _problem(v.parse_date, "31/02/2025", "day_first").code == "invalid_date"
    assert _problem(v.parse_date, "2025-02-30").code == "invalid_date"
    problem = _problem(v.parse_date, "next tuesday")
    assert "tuesday" not in problem.reason
    assert _problem(v.parse_date, "123", None).code == "invalid_date"  # not a serial in CSV


def test_birth_dates_in_the_future_or_before_1900_are_rejected() -> None:
    today = date(2026, 1, 1)
    assert v.parse_birth_date("1980-01-01", None, today=today) == date(1980, 1, 1)
    assert _problem(v.parse_birth_date, "2030-01-01", today=today).code == ("birth_date_in_future")
    assert _problem(v.parse_birth_date, "1899-12-31", today=today).code == "birth_date_too_old"


def test_timestamps_keep_time_of_day() -> None:
    assert v.parse_datetime("2024-04-03 14:30") == datetime(2024, 4, 3, 14, 30)
    assert v.parse_datetime("03/04/2024 2:30 PM", "day_first") == datetime(2024, 4, 3, 14, 30)
    assert v.parse_datetime(45000.5) == datetime(2023, 3, 15, 12, 0)


def test_ids_are_text_with_leading_zeros_and_no_float_artefacts() -> None:
    assert v.parse_id(" 000123 ") == "000123"
    assert v.parse_id(123.0) == "123"
    assert v.parse_id("") is None


def test_phone_numbers_become_e164_and_bad_ones_raise() -> None:
    assert v.parse_phone("07700 900123", "GB") == "+447700900123"
    assert v.parse_phone("(020) 7946 0764", "GB") == "+442079460764"
    assert v.parse_phone("+44 7700 900104", "GB") == "+447700900104"
    assert v.parse_phone("0044 161 496 0000", "GB") == "+441614960000"
    assert v.parse_phone("(212) 555-0123", "US") == "+12125550123"
    assert _problem(v.parse_phone, "07700 9001234 5", "GB").code == "invalid_phone"
    assert _problem(v.parse_phone, "not known", "GB").code == "invalid_phone"


def test_email_postcode_names_and_numbers() -> None:
    assert v.parse_email("  Ann.Lee@Example.ORG ") == "ann.lee@example.org"
    assert _problem(v.parse_email, "harry@example").code == "invalid_email"
    assert _problem(v.parse_email, "ann at example.org").code == "invalid_email"
    assert v.parse_postcode("m14  5ab") == "M14 5AB"
    assert v.parse_postcode("sw1a1aa") == "SW1A 1AA"
    assert _problem(v.parse_postcode, "Manchester").code == "invalid_postcode"
    assert v.parse_name("  Mary   Ann ") == "Mary Ann"
    assert v.parse_name("Siân") == "Siân"
    assert v.parse_number("1,250.5") == 1250.5
    assert _problem(v.parse_number, "two").code == "invalid_number"


@pytest.mark.parametrize(
    ("text", "decimal", "expected"),
    [
        ("1.234,50", None, 1234.5),  # a European export: only one reading
        ("1,5", None, 1.5),
        ("1 234,50", None, 1234.5),  # French settings group thousands with a space
        ("1'234.50", None, 1234.5),  # Swiss settings, with an apostrophe
        ("1,234.50", None, 1234.5),
        ("1.5E+03", None, 1500.0),  # as Excel writes a large number
        ("1,234", ",", 1.234),
        ("1,234", ".", 1234.0),
        ("€2,50", ",", 2.5),
    ],
)
def test_numbers_read_with_their_decimal_separator(
    text: str, decimal: v.DecimalSeparator, expected: float
) -> None:
    assert v.parse_number(text, decimal) == expected


def test_numbers_with_two_readings_or_the_wrong_separator_are_problems() -> None:
    assert _problem(v.parse_number, "1,234").code == "ambiguous_number"
    assert _problem(v.parse_number, "1.234").code == "ambiguous_number"
    assert _problem(v.parse_number, "1,5", ".").code == "number_separator_mismatch"
    assert _problem(v.parse_number, "1,2,3").code == "invalid_number"


def test_text_is_one_spelling_of_what_people_see() -> None:
    assert v.cell_text("\ufeff Zoe\u0308\u200b ") == "Zo\u00eb"  # NFC, no BOM, no ZWSP
    assert v.cell_text("\u200d\u200b") == ""
    assert v.cell_text("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645") == (
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # a Persian word keeps its ZWNJ
    )
    assert v.spreadsheet_error("#DIV/0!") is not None and v.spreadsheet_error("#1 Fan") is None


def test_consent_follows_the_sharing_policy() -> None:
    yes, no = ("yes", "y"), ("no", "n")
    everyone = v.consent_parser("all", yes, no, "x.yaml")
    assert everyone("no") is False  # an explicit no stays no (issue #18)
    assert everyone("  ") is None and everyone("Y") is True  # a blank is filled by the reader
    assert v.consent_parser("none", yes, no, "x.yaml")("yes") is False
    per_record = v.consent_parser("per_record", yes, no, "x.yaml")
    assert per_record(" YES ") is True
    assert per_record("n") is False
    assert per_record("") is False
    problem = _problem(per_record, "maybe")
    assert "consent_yes" in problem.reason and "x.yaml" in problem.reason


def test_masked_keeps_a_values_shape_not_its_content() -> None:
    assert v.masked("31/02/garbage") == "99/99/xxxxxxx"
    assert v.masked("Zoë O'Brien\n07700 900123") == "xxx x'xxxxx 99999 999999"
    long = v.masked("1" * 500)
    assert len(long) == v.SHOWN_CHARS and long.endswith("…") and set(long[:-1]) == {"9"}
    assert v.shown("two") == "two"
    assert v.shown("a\tb" + "c" * 100) == "a b" + "c" * (v.SHOWN_CHARS - 4) + "…"
