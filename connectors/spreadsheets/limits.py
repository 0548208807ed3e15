"""Limits checked before a member's spreadsheet is read, so a tiny hostile file cannot stop
the hub.

Why: an XLSX file is a zip of XML, and a 1.6 KB workbook with one cell at A1 and one at
XFD1048576 makes the reader allocate a 16,384 x 1,048,576 grid (512 GiB): the process
aborts, and every member after it is skipped. So, before any reader touches a file:

- its size on disk is bounded (``HUB_MAX_FILE_BYTES``, default 1 GiB);
- for a workbook, the zip's total uncompressed size (``HUB_MAX_UNCOMPRESSED_BYTES``, default
  2 GiB), its number of entries (10,000) and its compression ratio (at most 200:1 over all
  entries, above 1 MiB) are bounded, and every worksheet's extent (every part the workbook's
  relationships name as a sheet, wherever and however spelt, and any xl/worksheets
  part) — its declared ``<dimension>`` and the furthest cell it really has, found by
  streaming the XML without building it — must hold at most ``HUB_MAX_CELLS`` cells
  (default 50,000,000) and 16,384 columns;
- the binary formats are held to the same extent limit (``binary_limits``): an .xlsb's
  worksheet parts are streamed record by record (its declared BrtWsDim and its furthest
  row and cell), and an .xls's sheets are walked in its compound file (each DIMENSIONS
  record and furthest cell, and, as the reader reads every sheet of an .xls at once, all
  sheets together); an .xls whose workbook stream claims more bytes than the file holds is
  refused;
- a workbook zip that Python cannot unpack to measure (an unusual compression method,
  encryption, a damaged part or a wrong checksum) is refused: the reader may unpack it
  anyway, and reads a sheet to its last cell before it checks the checksum;
- a CSV field longer than ``HUB_MAX_FIELD_CHARS`` (default 1,000,000 characters) is a
  broken file, not a reason to buffer the whole file.

A file over a limit is refused with the reason and the limit (a SpreadsheetError for that
member); the other members go on. The limits are the hub operator's, set in the environment.
"""

from __future__ import annotations

import os
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 1 << 20
_DIMENSION = re.compile(rb'<(?:\w+:)?dimension\s+ref="([A-Z]+)?([0-9]+)?(?::([A-Z]+)([0-9]+))?"')
_MAX_COLUMNS = 16384


@dataclass(frozen=True)
class Limits:
    """The bounds a member file must keep to."""

    file_bytes: int = 1 << 30
    uncompressed_bytes: int = 2 << 30
    zip_entries: int = 10_000
    compression_ratio: int = 200
    cells: int = 50_000_000
    field_chars: int = 1_000_000

    @classmethod
    def from_env(cls) -> Limits:
        def read(name: str, default: int) -> int:
            value = os.environ.get(name)
            if not value:
                return default
            try:
                number = int(value)
            except ValueError:
                raise ValueError(f"{name} must be a whole number, got {value!r}") from None
            if number < 1:
                raise ValueError(f"{name} must be at least 1, got {number}")
            return number

        base = cls()
        return cls(
            file_bytes=read("HUB_MAX_FILE_BYTES", base.file_bytes),
            uncompressed_bytes=read("HUB_MAX_UNCOMPRESSED_BYTES", base.uncompressed_bytes),
            zip_entries=base.zip_entries,
            compression_ratio=base.compression_ratio,
            cells=read("HUB_MAX_CELLS", base.cells),
            field_chars=read("HUB_MAX_FIELD_CHARS", base.field_chars),
        )


def column_number(letters: bytes | str) -> int:
    """A1-style column letters as a 1-based number (A=1, XFD=16384)."""
    number = 0
    for ch in letters.decode() if isinstance(letters, bytes) else letters:
        number = number * 26 + (ord(ch) - 64)
    return number


def file_problem(path: Path, limits: Limits) -> str | None:
    """Why ``path`` is too big to read at all, or None."""
    size = path.stat().st_size
    if size > limits.file_bytes:
        return (
            f"the file is {size:,} bytes, over the limit of {limits.file_bytes:,} "
            "(HUB_MAX_FILE_BYTES); split it, or ask the hub operator to raise the limit"
        )
    return None


def workbook_problem(path: Path, limits: Limits) -> str | None:
    """Why workbook ``path`` must not be handed to a reader, or None (see the module)."""
    from connectors.spreadsheets.binary_limits import xls_problem  # it imports this module

    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return xls_problem(path, limits)  # or, when not a compound file, the reader says
    except (NotImplementedError, RuntimeError) as err:
        return _unmeasurable(err)
    with archive:
        try:
            return _archive_problem(archive, limits)
        except (NotImplementedError, RuntimeError, zipfile.BadZipFile, zlib.error, EOFError) as err:
            return _unmeasurable(err)


def _unmeasurable(err: Exception) -> str:
    """A part Python cannot unpack (an unusual method, encryption, damaged data) may still
    be unpacked by the reader: one with a wrong checksum is read to its last cell before
    the checksum is checked, so a bomb would go off. What cannot be measured is not read."""
    return (
        f"the hub cannot unpack the workbook to check it ({err}); open it in Excel and save "
        "it again, or export the sheet as CSV"
    )


def _archive_problem(archive: zipfile.ZipFile, limits: Limits) -> str | None:
    """The zip's size and parts, then each sheet's extent, whichever format it holds."""
    from connectors.spreadsheets.binary_limits import xlsb_problem

    entries = archive.infolist()
    if len(entries) > limits.zip_entries:
        return (
            f"the workbook holds {len(entries):,} parts, over the limit of "
            f"{limits.zip_entries:,}; save it again from Excel"
        )
    unpacked = sum(e.file_size for e in entries)
    packed = sum(e.compress_size for e in entries) or 1
    if unpacked > limits.uncompressed_bytes:
        return (
            f"the workbook unpacks to {unpacked:,} bytes, over the limit of "
            f"{limits.uncompressed_bytes:,} (HUB_MAX_UNCOMPRESSED_BYTES); export the "
            "sheet as CSV or split it"
        )
    if unpacked > (1 << 20) and unpacked / packed > limits.compression_ratio:
        return (
            f"the workbook unpacks {unpacked / packed:,.0f} times larger than it is, far "
            "beyond any real spreadsheet (a zip bomb?); save it again from Excel"
        )
    from connectors.spreadsheets.workbook_parts import normalised, sheet_parts

    # The parts the workbook's relationships name as sheets (any path, any case), and any
    # part named like a sheet: whichever the reader opens has been measured.
    named = sheet_parts(archive)
    for entry in entries:
        part = normalised(entry.filename)
        usual = part.startswith("xl/worksheets/") and part.endswith(".xml")
        if usual or part in named:
            problem = _sheet_problem(archive, entry, limits)
            if problem:
                return problem
    return xlsb_problem(archive, limits) or ods_problem(archive, limits)


# Tags that place cells, in XLSX sheets and in an ODS content.xml. Scanned, never built.
_TAG = re.compile(
    rb"<(/?)([\w.-]+:)?(row|c|table-row|table-cell|covered-table-cell|table)(?=[\s/>])([^<>]*)>"
)
_CELL_REF = re.compile(rb'<(?:\w+:)?c\s[^>]*?r="([A-Z]{1,3})([0-9]{1,7})"')
_PREFIXED_CELL = re.compile(rb"<\w+:c[\s/>]")
_ATTR_R = re.compile(rb'\sr="([A-Z]{0,3})([0-9]{0,7})"')
_TABLE_NAME = re.compile(rb'table:name="([^"]{1,64})"')
_ROWS_REPEATED = re.compile(rb'number-rows-repeated="([0-9]{1,12})"')
_COLUMNS_REPEATED = re.compile(rb'number-columns-repeated="([0-9]{1,12})"')


def _tags(fh: object) -> object:
    """(closing, name, attributes) of each cell-placing tag, streamed in chunks; a tag cut
    by a chunk boundary is completed from the next chunk."""
    tail = b""
    while chunk := fh.read(_CHUNK):  # type: ignore[attr-defined]
        data = tail + chunk
        cut = data.rfind(b"<")
        if cut != -1 and data.find(b">", cut) == -1:
            data, tail = data[:cut], data[cut:]
        else:
            tail = b""
        if len(tail) > _CHUNK:  # a tag over a megabyte long is no spreadsheet
            tail = b""
        for match in _TAG.finditer(data):
            yield match.group(1) == b"/", match.group(3), match.group(4)


def _extent_problem(name: str, rows: int, cols: int, what: str, limits: Limits) -> str | None:
    if cols > _MAX_COLUMNS or rows * cols > limits.cells:
        return (
            f"worksheet {name} {what} row {rows:,}, column {cols:,}: {rows * cols:,} cells, "
            f"over the limit of {limits.cells:,} (HUB_MAX_CELLS); delete the stray cells "
            "far from the data (Ctrl+End shows the last one) and save it again, or "
            "export the sheet as CSV"
        )
    return None


def _sheet_problem(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, limits: Limits) -> str | None:
    """The XLSX sheet's extent, declared and real, streamed: never more than a chunk in
    memory. A cell's place is its ``r`` attribute; ``r`` is optional, and readers place a
    cell without one after the cell before it, so a sheet with such cells is measured again
    tag by tag (slower; Excel and the usual writers always write ``r``)."""
    name = entry.filename.rsplit("/", 1)[-1]
    max_row = max_col = 0
    declared: tuple[int, int] | None = None
    unplaced = False
    tail = b""
    with archive.open(entry) as fh:
        while chunk := fh.read(_CHUNK):
            data = tail + chunk
            cut = data.rfind(b"<")  # no tag is split between two pieces, or counted twice
            data, tail = (data[:cut], data[cut:]) if cut > 0 else (data, b"")
            if len(tail) > _CHUNK:
                data, tail = data + tail, b""
            if declared is None and (found := _DIMENSION.search(data)):
                end_col = found.group(3) or found.group(1)
                end_row = found.group(4) or found.group(2)
                if end_col and end_row:
                    declared = (int(end_row), column_number(end_col))
            placed = 0
            for match in _CELL_REF.finditer(data):
                placed += 1
                max_col = max(max_col, column_number(match.group(1)))
                max_row = max(max_row, int(match.group(2)))
            if not unplaced:
                cells = data.count(b"<c ") + data.count(b"<c>") + data.count(b"<c/>")
                if b":c" in data:  # namespace-prefixed cells, as some writers emit
                    cells += len(_PREFIXED_CELL.findall(data))
                unplaced = cells > placed
    if declared and (problem := _extent_problem(name, *declared, "declares", limits)):
        return problem
    if unplaced:
        max_row, max_col = _placed_extent(archive, entry, limits)
    return _extent_problem(name, max_row, max_col, "has a cell at", limits)


def _placed_extent(
    archive: zipfile.ZipFile, entry: zipfile.ZipInfo, limits: Limits
) -> tuple[int, int]:
    """The furthest row and column, placing cells without ``r`` as readers do."""
    max_row = max_col = row = col = 0
    with archive.open(entry) as fh:
        for closing, tag, attrs in _tags(fh):
            if closing or tag not in (b"row", b"c"):
                continue
            ref = _ATTR_R.search(attrs)
            if tag == b"row":
                row = int(ref.group(2)) if ref and ref.group(2) else row + 1
                col = 0
                continue
            letters = ref.group(1) if ref else b""
            col = column_number(letters) if letters else col + 1
            if ref and ref.group(2):
                row = max(row, int(ref.group(2)))
            max_row, max_col = max(max_row, row or 1), max(max_col, col)
            if max_col > _MAX_COLUMNS or max_row * max_col > limits.cells:
                break
    return max_row, max_col


def ods_problem(archive: zipfile.ZipFile, limits: Limits) -> str | None:
    """An ODS sheet's extent, streamed from content.xml: repeated rows and cells count as
    many as they repeat, up to the last one holding a value. A 1.5 KB file of one value
    after 16,000 repeated columns in 6,000 repeated rows made the reader take over 3 GB."""
    try:
        entry = archive.getinfo("content.xml")
    except KeyError:
        return None
    max_row = max_col = row = col = last = repeat = 0
    table = "sheet"
    with archive.open(entry) as fh:
        for closing, tag, attrs in _tags(fh):
            if tag == b"table":
                if not closing:
                    named = _TABLE_NAME.search(attrs)
                    row = 0
                    table = named.group(1).decode("utf-8", "replace") if named else "sheet"
                continue
            if tag == b"table-row":
                if closing:
                    row += repeat
                    if last:
                        max_row, max_col = max(max_row, row), max(max_col, last)
                else:
                    found = _ROWS_REPEATED.search(attrs)
                    repeat, col, last = int(found.group(1)) if found else 1, 0, 0
                    if attrs.rstrip().endswith(b"/"):  # an empty self-closed row
                        row += repeat
                continue
            if closing:
                continue
            found = _COLUMNS_REPEATED.search(attrs)
            col += int(found.group(1)) if found else 1
            if b"value-type" in attrs or not attrs.rstrip().endswith(b"/"):
                last = col
            if max_col > _MAX_COLUMNS or max_row * max_col > limits.cells:
                break
    return _extent_problem(table, max_row, max_col, "has a value at", limits)
