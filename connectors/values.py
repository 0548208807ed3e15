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


def cell_text(value: Any) -> str:
    """The text a spreadsheet user sees in a cell (Excel numbers without a spurious '.0')."""
    if type(value) is str:
        return value.strip()
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


def parse_id(value: Any) -> str | None:
    """Ids are text: leading zeros kept, Excel's 123.0 shown as 123, outer spaces removed."""
    text = cell_text(value)
    return text or None


def parse_label(value: Any) -> str | None:
    """A member's own label (programme, status, outcome): trimmed, otherwise untouched.

    Case and inner spacing are matched later against the member's mappings, so keeping the
    label as written lets the quarantine show exactly what the member typed.
    """
    text = cell_text(value)
    return text or None


def parse_name(value: Any) -> str | None:
    """Names: trimmed and inner runs of spaces collapsed; case and accents kept as given."""
    text = cell_text(value)
    if not text:
        return None
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
EMAIL_PATTERN = re.compile(r"^[^@\s,;<>()\[\]\"']+@[^@\s,;<>()\[\]\"']+\.[A-Za-z]{2,}$")


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


@lru_cache(maxsize=65536)
def _phone_e164(digits: str, region: str) -> str | None:
    if region == "GB" and _GB_NATIONAL.match(digits):
        return "+44" + digits[1:]  # same answer as phonenumbers, ~100 times faster
    try:
        number = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:
        return None
    # is_possible (length rules), not is_valid (allocated ranges): numbers in reserved
    # ranges such as Ofcom's 07700 900xxx are well formed and must survive the load.
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_phone(value: Any, region: str = "GB") -> str | None:
    """E.164 (+447700900123) using ``region`` for numbers written without +country."""
    text = cell_text(value)
    if not text:
        return None
    digits = text.translate(_PHONE_JUNK)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    e164 = _phone_e164(digits, region.upper())
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


def parse_number(value: Any) -> float | None:
    """A quantity or value: Excel numbers as they are, text with optional thousands commas."""
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    text = cell_text(value)
    if not text:
        return None
    try:
        number = float(text.replace(",", "").replace("£", ""))
    except ValueError:
        raise ValueProblem(
            "invalid_number",
            "not a number; the value was left out of this row: write a plain number "
            "such as 2 or 1.5",
        ) from None
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
