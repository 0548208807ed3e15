"""Guards between a CSV file and the rows read from it: is it text at all, and did an
unclosed quote swallow the rows after it.

Why a module of its own: both are ways a file reads "successfully" into nonsense (a PDF
renamed .csv becomes rows of noise; one stray quote makes three people's rows one person's
name), so each is caught here before any value is parsed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Row = list[Any]


class SuspectRow(list):  # type: ignore[type-arg]
    """A row the reader could split but does not trust (cells swallowed by an unclosed
    quote): the record reader rejects it with ``reason``, naming ``column`` (0-based)."""

    __slots__ = ("code", "column", "reason")

    def __init__(self, cells: Row, code: str, column: int, reason: str) -> None:
        super().__init__(cells)
        self.code = code
        self.column = column
        self.reason = reason


# Leading bytes of files that are not text, and what they are, for the member's message.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"{\\rtf", "a Rich Text (Word) document"),
    (b"\x7fELF", "a program"),
    (b"MZ", "a Windows program"),
)
# C0 control bytes that never occur in a text export (tab, line feed, form feed and
# carriage return do; so does the old DOS end-of-file mark 0x1A at the very end).
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13, 26))


def not_text(head: bytes, encoding: str) -> str | None:
    """What the file is, when its first bytes show it is not a text export: a PDF, an
    image or an archive renamed .csv, an HTML or XML page a system exported as "Excel", or
    bytes no text has (NULs, control characters); None for text."""
    what = next((name for magic, name in _MAGIC if head.startswith(magic)), None)
    if what is None and not encoding.startswith("utf-16"):
        text_head = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:512].lower()
        if text_head.startswith((b"<!doctype html", b"<html", b"<table")):
            return (
                "this is a web page (HTML), not a CSV file (some systems export 'Excel' "
                "files this way)"
            )
        if text_head.startswith(b"<?xml"):
            return "this is an XML file, not a CSV file"
        body = head.rstrip(b"\x1a")
        controls = sum(body.count(bytes([b])) for b in _CONTROL)
        if b"\x00" in body or controls > max(2, len(body) // 200):
            what = "binary data"
    return None if what is None else f"this is not a text (CSV) file: it is {what}"


def watch_quotes(
    rows: Iterator[tuple[int, Row]], reader: Any, delimiter: str, headers: list[str]
) -> Iterator[tuple[int, Row]]:
    """Pass rows on, marking one whose quoted cell swallowed the lines after it.

    A quote opened and never closed makes the CSV reader read on, past line ends, until
    the next quote: the rows on those lines become one person's name. A record spanning
    several lines is normal (a note with line breaks); one whose extra lines are rows of
    the table (as many delimiters as the header) is not. Only records that span lines are
    looked at, so the cost on a normal row is one comparison.
    """
    need = max(2, len(headers) - 2)
    last = reader.line_num
    for number, row in rows:
        line = reader.line_num
        if line - last > 1:
            for index, cell in enumerate(row):
                if "\n" not in cell and "\r" not in cell:
                    continue
                swallowed = [x for x in cell.splitlines()[1:] if x.count(delimiter) >= need]
                if swallowed:
                    header = headers[index] if index < len(headers) else f"number {index + 1}"
                    lines = (
                        f"line {line} of the file was"
                        if line == last + 2
                        else f"lines {last + 2}-{line} of the file were"
                    )
                    row = SuspectRow(
                        row,
                        "unclosed_quote",
                        index,
                        f"a quote (\") opened in column '{header}' is never closed, so {lines} "
                        f"read into this one cell instead of as rows ({len(swallowed)} of them "
                        "look like rows of the table, and none of them is loaded); remove the "
                        "stray quote, or close it, and export again",
                    )
                    break
        last = line
        yield number, row
