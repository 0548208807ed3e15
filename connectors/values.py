"""Value parsers shared by every connector: cells and API fields -> canonical values.

Members type dates, phone numbers and ids in every way a spreadsheet allows. Each parser
here turns one cell (text from a CSV, or a typed value from Excel) into the canonical value,
or raises :class:`ValueProblem` with a plain-English reason that says how to fix the cell or
the member's config. Reasons never repeat the cell's value (it may be personal data); the
quarantine row carries the raw value in its own column.

Dates are never guessed: ``03/04/2025`` is read only when the member declared
``connector.date_order`` or when one part is above 12 so only one reading exists.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Literal

import phonenumbers

DateOrder = Literal["day_first", "month_first"] | None

EXCEL_EPOCH = date(1899, 12, 30)  # 1900 date system, with Excel's 1900 leap-year bug absorbed
EXCEL_EPOCH_DT = datetime(1899, 12, 30)
CSV_SERIAL_MIN, CSV_SERIAL_MAX = 20000, 80000  # 1954-10-03 .. 2119-01-10
EXCEL_SERIAL_MAX = 2958465  # 9999-12-31
OLDEST_BIRTH = date(1900, 1, 1)


class ValueProblem(ValueError):
    """A cell that cannot be read; ``reason`` says what is wrong and how to fix it."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# --- text -------------------------------------------------------------------------------


# Invisible characters that ride along with copied text: zero-width space, word joiner,
# byte-order marks left inside a field (files joined together), direction marks pasted from
# web pages. Removed everywhere. Zero-width (non-)joiners are meaningful inside Persian and
# Indic words, so they are removed only at the edges of a cell.
_INVISIBLE = re.compile("[\u200b\u2060\ufeff\u200e\u200f\u180e]")
_EDGE_JOINERS = "\u200c\u200d"
# Characters whose presence at either end of a cell may make it blank once cleaned.
BLANK_EDGE = frozenset(" \t\r\n\x0b\x0c\u00a0\u2007\u202f\u3000\u200b\u2060\ufeff\u200c\u200d")


@lru_cache(maxsize=16384)  # names repeat: most non-ASCII cells are cleaned once
def clean_text(text: str) -> str:
    """NFC, without invisible characters, trimmed: one spelling for what people see as the
    same text (an 'é' typed on a Mac is two code points, on Windows one)."""
    if text.isascii():
        return text.strip()
    if _INVISIBLE.search(text):  # a scan without a copy: most text has none
        text = _INVISIBLE.sub("", text)
    text = text.strip()
    if text[:1] in _EDGE_JOINERS or text[-1:] in _EDGE_JOINERS:  # "" is in any string
        text = text.strip(_EDGE_JOINERS).strip()
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return text


def cell_text(value: Any) -> str:
    """The text a spreadsheet user sees in a cell (Excel numbers without a spurious '.0')."""
    if type(value) is str:
        return value.strip() if value.isascii() else clean_text(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


# What spreadsheet programs write into a cell whose formula failed: Excel's and Google
# Sheets' error values (#DIV/0!, #N/A, #REF!, #ERROR!...) and LibreOffice's (Err:502).
_SPREADSHEET_ERROR = re.compile(r"^(?:#[A-Z][A-Z0-9/_]{0,15}[!?]|#N/A|Err:\d{3})$")


def spreadsheet_error(text: str) -> ValueProblem | None:
    """The problem with a cell holding a formula's error value, or None.

    Why: such a cell looks like text (or, read from a workbook, like an empty cell), so it
    would load as a name or vanish as a blank; it is a formula to fix in the source sheet.
    """
    if not _SPREADSHEET_ERROR.match(text):
        return None
    return ValueProblem(
        "spreadsheet_error",
        f"the cell holds the spreadsheet error {text} (a formula that failed), not a value; "
        "fix the formula in the spreadsheet (or paste the values) and export again",
    )


_SCIENTIFIC = re.compile(r"^[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+$")
# Excel keeps 15 significant digits: a number cell of 16 or more digits has lost the rest.
_EXCEL_DIGITS = 1e15


def parse_id(value: Any) -> str | None:
    """Ids are text: leading zeros kept, Excel's 123.0 shown as 123, outer spaces removed.

    An id that Excel turned into a number has lost digits for good (1.23457E+11, or a
    16-digit number cell), and two people could share what is left: such an id is refused,
    never loaded as someone's id.
    """
    if type(value) is float and abs(value) >= _EXCEL_DIGITS:
        raise ValueProblem(
            "id_digits_lost",
            "this id is a number cell of 16 or more digits, and Excel keeps only 15, so its "
            "last digits are lost; format the id column as Text, type the ids again (or "
            "export them from the source system) and export again",
        )
    text = cell_text(value)
    if not text:
        return None
    if text.isalnum():  # most ids: nothing more to look at
        return text
    if _SCIENTIFIC.match(text):
        raise ValueProblem(
            "id_scientific_notation",
            "this id was turned into a number in scientific notation (such as 1.23457E+11) "
            "when the file was saved from a spreadsheet, so its digits are lost; format the "
            "id column as Text in the spreadsheet, restore the ids and export again",
        )
    if "\n" in text or "\r" in text:
        raise ValueProblem("line_break", _LINE_BREAK)
    return text


_LINE_BREAK = (
    "a line break inside this cell, where only one line belongs (often a stray quote "
    '(") earlier on the row that joined lines together); correct the cell or the quote'
)


def parse_label(value: Any) -> str | None:
    """A member's own label (programme, status, outcome): trimmed, otherwise untouched.

    Case and inner spacing are matched later against the member's mappings, so keeping the
    label as written lets the quarantine show exactly what the member typed.
    """
    text = cell_text(value)
    if "\n" in text or "\r" in text:
        raise ValueProblem("line_break", _LINE_BREAK)
    return text or None


def parse_name(value: Any) -> str | None:
    """Names: trimmed and inner runs of spaces collapsed; case and accents kept as given.

    A line break is refused rather than folded into a space: it is how rows swallowed by
    an unclosed quote show up, and joining them would make them part of someone's name.
    """
    text = cell_text(value)
    if not text:
        return None
    if "\n" in text or "\r" in text:
        raise ValueProblem("line_break", _LINE_BREAK)
    return " ".join(text.split())


# --- dates ------------------------------------------------------------------------------

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_TIME = r"(?:[T ]+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}:?\d{2}|([AaPp])[Mm])?)?"
_ISO = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})" + _TIME + r"$")
_NUMERIC = re.compile(r"^(\d{1,2})([/\-.])(\d{1,2})\2(\d+)" + _TIME + r"$")
_DAY_MONTH_NAME = re.compile(
    r"^(\d{1,2})(?:st|nd|rd|th)?[\s\-/.]+([A-Za-z]+)\.?,?[\s\-/.]+(\d+)" + _TIME + r"$"
)
_MONTH_NAME_DAY = re.compile(
    r"^([A-Za-z]+)\.?[\s\-/.]+(\d{1,2})(?:st|nd|rd|th)?,?[\s\-/.]+(\d+)" + _TIME + r"$"
)
_NUMERIC_DATE_ONLY = re.compile(r"^(\d{1,2})([/\-.])(\d{1,2})\2(\d+)$")
_SERIAL = re.compile(r"^\d{5}(?:\.\d+)?$")

_FIX_CELL = "correct the date in the file"


def _date_order_fix(config_name: str) -> str:
    return (
        f"set connector.date_order to day_first or month_first in {config_name}, "
        "or write the date as YYYY-MM-DD"
    )


def _make(year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise ValueProblem(
            "invalid_date",
            f"this date does not exist in the calendar (check the day, the month and the "
            f"day/month order); {_FIX_CELL}",
        ) from None


def _year(text: str) -> int:
    if len(text) == 2:
        raise ValueProblem(
            "two_digit_year",
            "two-digit year: the century cannot be known; write the year in full "
            "(e.g. 1985, not 85), or format the column as a date in the spreadsheet",
        )
    if len(text) != 4:
        raise ValueProblem("invalid_date", f"the year is not four digits; {_FIX_CELL}")
    return int(text)


def _with_time(day: date, match: re.Match[str], first_time_group: int) -> datetime:
    hour, minute, second, half = match.group(
        first_time_group, first_time_group + 1, first_time_group + 2, first_time_group + 3
    )
    if hour is None:
        return datetime(day.year, day.month, day.day)
    hours = int(hour)
    if half and hours <= 12:
        hours = hours % 12 + (12 if half in "Pp" else 0)
    try:
        clock = time(hours, int(minute), int(second or 0))
    except ValueError:
        raise ValueProblem("invalid_date", f"the time of day is not valid; {_FIX_CELL}") from None
    return datetime.combine(day, clock)


def _from_serial(serial: float) -> datetime:
    if not 1 <= serial <= EXCEL_SERIAL_MAX:
        raise ValueProblem(
            "invalid_date",
            "a number that is not a date; type a date (YYYY-MM-DD) or format the cell as a "
            "date in the spreadsheet",
        )
    return EXCEL_EPOCH_DT + timedelta(days=serial)


def _numeric_date(first: int, second: int, year: int, order: DateOrder, config_name: str) -> date:
    if order == "day_first":
        if second > 12:
            raise ValueProblem(
                "date_order_mismatch",
                f"this date does not fit connector.date_order day_first (there is no month "
                f"{second}); correct the date, or if the file writes month first set "
                f"connector.date_order to month_first in {config_name}",
            )
        return _make(year, second, first)
    if order == "month_first":
        if first > 12:
            raise ValueProblem(
                "date_order_mismatch",
                f"this date does not fit connector.date_order month_first (there is no month "
                f"{first}); correct the date, or if the file writes day first set "
                f"connector.date_order to day_first in {config_name}",
            )
        return _make(year, first, second)
    if first <= 12 and second <= 12:
        if first == second:
            return _make(year, first, second)
        raise ValueProblem(
            "ambiguous_date",
            "ambiguous date: day and month could be either way round (both are 12 or "
            f"less) and the hub never guesses; {_date_order_fix(config_name)}",
        )
    if first > 12 and second > 12:
        raise ValueProblem("invalid_date", f"neither part of this date can be a month; {_FIX_CELL}")
    return _make(year, second, first) if first > 12 else _make(year, first, second)


def parse_datetime(
    value: Any,
    order: DateOrder = None,
    config_name: str = "the member's YAML",
    serial_text: bool = True,
) -> datetime | None:
    """Any date or date-time a member might write -> a naive datetime (or None if blank).

    Accepts Excel date cells and serial numbers, ISO dates (optionally with a time),
    d/m/yyyy in the member's declared order, and month names. Raises ValueProblem.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, bool):
        raise ValueProblem("invalid_date", f"a TRUE/FALSE cell is not a date; {_FIX_CELL}")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueProblem("invalid_date", f"not a date; {_FIX_CELL}")
        return _from_serial(float(value))
    if isinstance(value, timedelta | time):
        raise ValueProblem("invalid_date", f"a time or duration is not a date; {_FIX_CELL}")
    text = str(value).strip()
    if not text:
        return None
    match = _ISO.match(text)
    if match:
        return _with_time(_make(int(match[1]), int(match[2]), int(match[3])), match, 4)
    match = _NUMERIC.match(text)
    if match:
        year = _year(match[4])
        day = _numeric_date(int(match[1]), int(match[3]), year, order, config_name)
        return _with_time(day, match, 5)
    match = _DAY_MONTH_NAME.match(text)
    if match and match[2].lower() in _MONTHS:
        day = _make(_year(match[3]), _MONTHS[match[2].lower()], int(match[1]))
        return _with_time(day, match, 4)
    match = _MONTH_NAME_DAY.match(text)
    if match and match[1].lower() in _MONTHS:
        day = _make(_year(match[3]), _MONTHS[match[1].lower()], int(match[2]))
        return _with_time(day, match, 4)
    if serial_text and _SERIAL.match(text):
        serial = float(text)
        if CSV_SERIAL_MIN <= serial <= CSV_SERIAL_MAX:
            return _from_serial(serial)
    raise ValueProblem(
        "invalid_date",
        "not a date the hub can read; write it as YYYY-MM-DD or DD/MM/YYYY "
        "(with connector.date_order set), or format the column as a date in the spreadsheet",
    )


def parse_date(
    value: Any, order: DateOrder = None, config_name: str = "the member's YAML"
) -> date | None:
    """A calendar date (see :func:`parse_datetime`); any time of day is ignored."""
    if type(value) is str:
        text = value.strip()
        if not text:
            return None
        if len(text) == 10 and text[4] == "-" and text[7] == "-":
            try:  # fast path: ISO dates, the commonest export format
                return date.fromisoformat(text)
            except ValueError:
                pass
        match = _NUMERIC_DATE_ONLY.match(text)
        if match:  # fast path: 03/04/2025 without a time
            year = _year(match[4])
            return _numeric_date(int(match[1]), int(match[3]), year, order, config_name)
    moment = parse_datetime(value, order, config_name)
    return None if moment is None else moment.date()


def parse_birth_date(
    value: Any,
    order: DateOrder = None,
    config_name: str = "the member's YAML",
    today: date | None = None,
) -> date | None:
    """A date of birth: a date, not in the future and not before 1900."""
    born = parse_date(value, order, config_name)
    if born is None:
        return None
    if born > (today or date.today()):
        raise ValueProblem(
            "birth_date_in_future",
            "date of birth is in the future; correct it (check the day/month order and the year)",
        )
    if born < OLDEST_BIRTH:
        raise ValueProblem(
            "birth_date_too_old",
            "date of birth is before 1900; correct it (check the year)",
        )
    return born


# --- contact details --------------------------------------------------------------------

# Public: the linker's normaliser (transforms.dedup.normalise) reads e-mails and postcodes
# with these same patterns, so a value the load accepted is never rejected there.
# The local part may hold any of RFC 5322's atext (o'brien+news@example.org is a real
# address); the domain may not hold quotes or the separators people type between addresses.
EMAIL_PATTERN = re.compile(
    r"^[^@\s,;<>()\[\]\"]+@[^@\s,;<>()\[\]\"']+\.(?:[A-Za-z]{2,}|xn--[A-Za-z0-9-]{2,})$"
)


def parse_email(value: Any) -> str | None:
    """Trimmed and lower-cased; something that is clearly not an address raises."""
    text = cell_text(value)
    if not text:
        return None
    text = text.lower()
    if text.startswith("mailto:"):
        text = text[7:]
    if not EMAIL_PATTERN.match(text) or ".." in text:
        raise ValueProblem(
            "invalid_email",
            "not an e-mail address (expected name@domain.tld); the e-mail was left out of "
            "this person's record: correct it in the file",
        )
    return text


_PHONE_JUNK = str.maketrans("", "", " -()./\u00a0\t")
_GB_NATIONAL = re.compile(r"^0[1-9]\d{9}$")
# Why a number is refused, by what _phone_e164 found (the reason names no digits).
_NO_TRUNK_ZERO = "no_trunk_zero"


@lru_cache(maxsize=256)
def _trunk_prefix(region: str) -> str | None:
    """The region's national (trunk) prefix when it is 0 (GB, IE, FR, DE, AU...): there a
    national number is always written with it, so one without it has lost it."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    prefix = metadata.national_prefix if metadata is not None else None
    return prefix if prefix == "0" else None


@lru_cache(maxsize=65536)
def _phone_e164(digits: str, region: str, number_cell: bool = False) -> str | None:
    """E.164 for ``digits``, None when it is no number, or _NO_TRUNK_ZERO.

    A national number without its leading 0 (Excel drops it from a number cell) is read
    only from a number cell, where the loss is certain; typed as text it is refused, not
    guessed. A number must be valid for its country (phonenumbers' is_valid_number), which
    a 9-digit UK mobile is not; UK numbers of the full 10 national digits are kept even in
    unallocated ranges, so Ofcom's drama numbers (07700 900xxx) load.
    """
    if region == "GB" and _GB_NATIONAL.match(digits):
        return "+44" + digits[1:]  # same answer as phonenumbers, ~100 times faster
    trunk = _trunk_prefix(region)
    if trunk and digits[:1].isdigit() and not digits.startswith(trunk):
        restored = _phone_e164(trunk + digits, region)
        if restored is None or number_cell:
            return restored  # not a number even with its 0, or a number cell that lost it
        return _NO_TRUNK_ZERO
    try:
        number = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:
        return None
    national = phonenumbers.national_significant_number(number)
    full_uk = number.country_code == 44 and len(national) == 10 and national[0] != "0"
    if not (phonenumbers.is_valid_number(number) or full_uk):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_phone(value: Any, region: str = "GB") -> str | None:
    """E.164 (+447700900123) using ``region`` for numbers written without +country."""
    number_cell = type(value) is not str and type(value) in (int, float)
    text = cell_text(value)
    if not text:
        return None
    digits = text.translate(_PHONE_JUNK)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    e164 = _phone_e164(digits, region.upper(), number_cell)
    if e164 == _NO_TRUNK_ZERO:
        raise ValueProblem(
            "phone_without_leading_zero",
            f"a national {region.upper()} number without its leading 0 (a spreadsheet drops "
            "it when the column is not formatted as Text), so which number it was is not "
            "certain; format the column as Text and write the number in full (07700 900123) "
            "or with its country code (+44 7700 900123)",
        )
    if e164 is None:
        raise ValueProblem(
            "invalid_phone",
            f"not a phone number (wrong length or characters for {region.upper()} or "
            "+country numbers); the phone was left out of this person's record: correct it "
            "in the file",
        )
    return e164


GB_POSTCODE_PATTERN = re.compile(r"^(?:[A-Z]{1,2}\d[A-Z\d]?|GIR)\d[A-Z]{2}$")


def parse_postcode(value: Any, region: str = "GB") -> str | None:
    """Upper case with one space; for GB the space goes before the last three characters."""
    text = cell_text(value)
    if not text:
        return None
    if region.upper() != "GB":
        return " ".join(text.upper().split())
    compact = "".join(text.split()).upper()
    if not GB_POSTCODE_PATTERN.match(compact):
        raise ValueProblem(
            "invalid_postcode",
            "not a UK postcode (expected e.g. M14 5AB); the postcode was left out of this "
            "person's record: correct it in the file",
        )
    return f"{compact[:-3]} {compact[-3:]}"


# --- numbers and consent ----------------------------------------------------------------


DecimalSeparator = Literal[".", ","] | None
# Currency signs and the spaces and apostrophes used to group thousands (1 234,50 in French
# settings, 1'234.50 in Swiss ones): never part of the number.
_NUMBER_JUNK = str.maketrans("", "", "£€$ \u00a0\u202f\u2009'")
_POINT_DECIMAL = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d*)(?:\.\d+)?$")
_COMMA_DECIMAL = re.compile(r"^[+-]?(?:\d{1,3}(?:\.\d{3})+|\d*)(?:,\d+)?$")
_EXPONENT = re.compile(r"^[+-]?\d+(?:\.\d+)?[eE][+-]?\d{1,3}$")  # 1.5E+03, as Excel writes it


def number_readings(text: str) -> tuple[float | None, float | None]:
    """The number ``text`` is with a decimal point, and with a decimal comma (None where it
    is not a number that way). ``1,5`` is only 1.5; ``1,234`` is 1234 or 1.234."""
    compact = text.translate(_NUMBER_JUNK)
    if not compact or not any(ch.isdigit() for ch in compact):
        return None, None
    if _EXPONENT.match(compact):
        return float(compact), float(compact)
    point = float(compact.replace(",", "")) if _POINT_DECIMAL.match(compact) else None
    comma = (
        float(compact.replace(".", "").replace(",", ".")) if _COMMA_DECIMAL.match(compact) else None
    )
    return point, comma


def _separator_fix(config_name: str) -> str:
    return (
        f"set connector.decimal_separator to '.' or ',' in {config_name}, or write the number "
        "without thousands separators (1234.5)"
    )


def parse_number(
    value: Any, decimal: DecimalSeparator = None, config_name: str = "the member's YAML"
) -> float | None:
    """A quantity or value: Excel numbers as they are; text read with the member's decimal
    separator, or, when none is set, only when it has one reading.

    ``1.234,50`` (a European export) is 1234.5, never 1.2345; ``1,5`` is 1.5, never 15;
    ``1,234`` could be either and, with no separator set, raises ``ambiguous_number`` for
    the caller to settle from the column's other values (``records``) or to report.
    """
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    text = cell_text(value)
    if not text:
        return None
    point, comma = number_readings(text)
    if decimal == ".":
        number = point
    elif decimal == ",":
        number = comma
    elif point is not None and comma is not None and point != comma:
        raise ValueProblem(
            "ambiguous_number",
            "ambiguous number: the comma or point could be a decimal or a thousands "
            "separator and nothing else in the column settles it; " + _separator_fix(config_name),
        )
    else:
        number = point if point is not None else comma
    if number is None:
        other = comma if decimal == "." else point if decimal == "," else None
        if other is not None:
            raise ValueProblem(
                "number_separator_mismatch",
                f"this number does not fit connector.decimal_separator '{decimal}' (it reads "
                "only with the other separator); correct the number, or the setting in "
                f"{config_name}",
            )
        raise ValueProblem(
            "invalid_number",
            "not a number; the value was left out of this row: write a plain number "
            "such as 2 or 1.5",
        )
    if not math.isfinite(number):
        raise ValueProblem("invalid_number", "not a finite number; write a plain number")
    return number


def consent_parser(
    policy: str, yes: tuple[str, ...], no: tuple[str, ...], config_name: str
) -> Callable[[Any], bool | None]:
    """Build the consent reader for a member's sharing policy.

    'per_record' matches the cell against the member's consent_yes / consent_no words
    (case-insensitive); a blank cell means no consent; an unknown word means no consent
    *and* a warning, because it usually means the member's spreadsheet uses a word the YAML
    does not list yet. 'all' reads the cell the same way but returns None for a blank one:
    only a blank is filled in as consent (by the caller), so an explicit "No" stays "No".
    'none' ignores the column.
    """
    if policy == "none":
        return lambda value: False
    yes_set = {" ".join(w.split()).casefold() for w in yes}
    no_set = {" ".join(w.split()).casefold() for w in no}

    def parse(value: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = " ".join(cell_text(value).split()).casefold()
        if not text and policy == "all":
            return None  # no answer: the caller fills it in
        if not text or text in no_set:
            return False
        if text in yes_set:
            return True
        raise ValueProblem(
            "unrecognised_consent",
            "consent answer not recognised, so this person is treated as not consenting; "
            f"add the word to sharing.consent_yes or sharing.consent_no in {config_name}",
        )

    return parse


def consent_line(policy: str, counts: dict[str, int]) -> str:
    """What the sharing policy did to the people's consent answers, in numbers (for
    ``hub check``; the counts are keyed as ``EntityReader._consent`` and
    ``transforms.consent_report`` key them)."""
    yes, no = counts.get("yes", 0), counts.get("no", 0) + counts.get("no_kept", 0)
    if policy == "all":
        return (
            f"consent (sharing.consent: all): {counts.get('blank_taken_as_yes', 0)} people with "
            f"no answer counted as consenting; {yes} answered yes; "
            f"{counts.get('no_kept', 0)} answered no and stay not consenting"
        )
    if policy == "none":
        return (
            f"consent (sharing.consent: none): nobody is linked across members; "
            f"{counts.get('yes_not_shared', 0)} people who answered yes are not shared"
        )
    return f"consent (per record): {yes} people consent to sharing, {no} do not (or gave no answer)"


SHOWN_CHARS = 40  # at most this much of an unreadable value reaches a quarantine row


def masked(value: Any, limit: int = SHOWN_CHARS) -> str:
    """A personal value's shape without its content: digits become 9, letters x.

    Why: a quarantine row must let the member see what kind of value failed ('99/99/xxxxxxx'
    is plainly not a date) without the hub keeping, or showing, a person's data in it.
    Other characters (separators) are kept; control characters become spaces; the result is
    cut to ``limit`` characters, marked with '…'.
    """
    out = []
    for ch in str(value):
        if ch.isdigit():
            out.append("9")
        elif ch.isalpha():
            out.append("x")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(" ")
    return _cut("".join(out), limit)


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """A non-personal value as a quarantine row shows it: one line, cut to ``limit``."""
    return _cut("".join(ch if ch.isprintable() else " " for ch in str(value)), limit)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
