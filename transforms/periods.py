"""Calendar quarters, the periods the published dataset is reported by."""

from __future__ import annotations

from datetime import date, timedelta


def quarter_of(day: date) -> str:
    """``YYYY-Qn`` for a date."""
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def quarter_bounds(year: int, quarter: int) -> tuple[date, date]:
    """First and last day of a quarter."""
    start = date(year, 3 * (quarter - 1) + 1, 1)
    nxt = date(year + (quarter == 4), (3 * quarter) % 12 + 1, 1)
    return start, nxt - timedelta(days=1)


def quarters_between(first: date, last: date) -> list[tuple[str, date, date]]:
    """Every quarter from the one holding ``first`` to the one holding ``last``."""
    if last < first:
        return []
    out: list[tuple[str, date, date]] = []
    year, quarter = first.year, (first.month - 1) // 3 + 1
    while True:
        start, end = quarter_bounds(year, quarter)
        out.append((f"{year}-Q{quarter}", start, end))
        if end >= last:
            return out
        year, quarter = (year + 1, 1) if quarter == 4 else (year, quarter + 1)
