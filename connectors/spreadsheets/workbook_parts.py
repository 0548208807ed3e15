"""Where an XLSX workbook keeps its sheets, and the error cells its reader cannot show.

Why a module of its own: two checks need to know which zip parts are worksheets. The size
check must measure every part the reader may open, and the reader finds a sheet through the
workbook's relationships, whose target may be any path (``/xl/Sheets/Data.XML``), not only
``xl/worksheets/*.xml``. And the reader (calamine) hands a formula's error value
(``#DIV/0!``) on as an empty cell, so the record reader would take it for a blank: the
error cells are found here, straight from the sheet's XML, streamed a chunk at a time.
"""

from __future__ import annotations

import html
import posixpath
import re
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_CHUNK = 1 << 20
_BOOK_BYTES = 8 << 20  # a workbook.xml or its relationships beyond this is not read whole
_SHEET_TAG = re.compile(rb"<(?:\w+:)?sheet\s[^>]*>")
_SHEET_NAME = re.compile(rb'\sname="([^"]{0,255})"')
_SHEET_REL = re.compile(rb'\s\w+:id="([^"]{1,255})"')
_RELATIONSHIP = re.compile(rb"<(?:\w+:)?Relationship\s[^>]*>")
_REL_ID = re.compile(rb'\sId="([^"]{1,255})"')
_REL_TARGET = re.compile(rb'\sTarget="([^"]{1,1024})"')
# An error cell: <c r="B3" t="e"><v>#DIV/0!</v></c> (attributes in any order).
_ERROR_CELL = re.compile(
    rb'<(?:\w+:)?c\s(?=[^>]*\bt="e")[^>]*?\br="([A-Z]{1,3})([0-9]{1,7})"[^>]*>'
    rb"(?:(?!</(?:\w+:)?c>).){0,400}?<(?:\w+:)?v>([^<]{1,40})</(?:\w+:)?v>",
    re.S,
)
MAX_ERROR_CELLS = 100_000  # beyond this the rows are rejected anyway; memory stays bounded


def normalised(name: str) -> str:
    """A zip entry name as readers look it up: forward slashes, no leading slash, any case."""
    return name.replace("\\", "/").lstrip("/").lower()


def part_of(target: str, base: str = "xl/") -> str:
    """The normalised part a relationship ``target`` points at, from the ``base`` folder
    (an absolute target starts at the package root)."""
    target = target.replace("\\", "/")
    path = target.lstrip("/") if target.startswith("/") else base + target
    return normalised(posixpath.normpath(path))


def _small_part(archive: zipfile.ZipFile, name: str) -> bytes | None:
    entries = {normalised(e.filename): e for e in archive.infolist()}
    entry = entries.get(name)
    if entry is None:
        return None
    with archive.open(entry) as fh:
        return fh.read(_BOOK_BYTES)


def sheet_parts(archive: zipfile.ZipFile, book: str = "xl/workbook.xml") -> dict[str, str]:
    """Normalised part name -> sheet name, from the workbook and its relationships; empty
    when the workbook has none (then parts can only be found by their usual names)."""
    workbook = _small_part(archive, book)
    rels = _small_part(
        archive,
        posixpath.join(posixpath.dirname(book), "_rels", "") + posixpath.basename(book) + ".rels",
    )
    if workbook is None or rels is None:
        return {}
    targets: dict[bytes, str] = {}
    for tag in _RELATIONSHIP.findall(rels):
        rel_id, target = _REL_ID.search(tag), _REL_TARGET.search(tag)
        if rel_id and target:
            targets[rel_id.group(1)] = html.unescape(target.group(1).decode("utf-8", "replace"))
    base = posixpath.dirname(book) + "/"
    parts: dict[str, str] = {}
    for tag in _SHEET_TAG.findall(workbook):
        name, rel = _SHEET_NAME.search(tag), _SHEET_REL.search(tag)
        if name and rel and rel.group(1) in targets:
            sheet = html.unescape(name.group(1).decode("utf-8", "replace"))
            parts[part_of(targets[rel.group(1)], base)] = sheet
    return parts


def _column_index(letters: bytes) -> int:
    number = 0
    for ch in letters:
        number = number * 26 + (ch - 64)
    return number - 1


@contextmanager
def _sheet_stream(
    path: Path,
    sheet: str,
    names_of: Callable[[zipfile.ZipFile], dict[str, str]],
    errors: tuple[type[BaseException], ...],
) -> Iterator[IO[bytes] | None]:
    """The named sheet's part of a zipped workbook (XLSX, XLSB), open for reading; None when
    the file is no zip, its sheet list cannot be read (``errors``) or names no such sheet."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        yield None
        return
    with archive:
        try:
            names = names_of(archive)
        except errors:
            yield None
            return
        part = next((p for p, name in names.items() if name == sheet), None)
        entries = {normalised(e.filename): e for e in archive.infolist()}
        if part is None or part not in entries:
            yield None
            return
        with archive.open(entries[part]) as fh:
            yield fh


def error_cells(path: Path, sheet: str) -> dict[int, list[tuple[int, str]]]:
    """1-based row -> [(0-based column, error text)] of the XLSX sheet's error cells.

    Empty for any other format, or when the sheet cannot be found this way (the reader's
    own errors then stand)."""
    found: dict[int, list[tuple[int, str]]] = {}
    errors = (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError)
    with _sheet_stream(path, sheet, sheet_parts, errors) as fh:
        if fh is None:
            return {}
        seen: set[tuple[int, int]] = set()
        tail = b""
        while chunk := fh.read(_CHUNK):
            data = tail + chunk
            if b't="e"' in data:
                for match in _ERROR_CELL.finditer(data):
                    cell = (int(match.group(2)), _column_index(match.group(1)))
                    if cell in seen:
                        continue
                    seen.add(cell)
                    text = html.unescape(match.group(3).decode("utf-8", "replace"))
                    found.setdefault(cell[0], []).append((cell[1], text))
                    if len(seen) >= MAX_ERROR_CELLS:
                        return found
            tail = data[-1024:]  # an error cell cut by the chunk end is found next time
    return found


# ODS (LibreOffice): rows, cells and the text of a cell, whatever the namespace prefixes.
_ODS_TOKEN = re.compile(
    rb"<(/?)(?:[\w.-]+:)?(table-row|table-cell|covered-table-cell|table)(?=[\s/>])([^<>]*)>"
    rb"|<(?:[\w.-]+:)?p>([^<]{0,40})</(?:[\w.-]+:)?p>"
)
_ODS_NAME = re.compile(rb'(?:[\w.-]+:)?name="([^"]{0,255})"')
_ODS_ROWS = re.compile(rb'number-rows-repeated="([0-9]{1,12})"')
_ODS_COLUMNS = re.compile(rb'number-columns-repeated="([0-9]{1,12})"')
_ODS_ERROR = re.compile(rb'value-type="error"')


def ods_error_cells(path: Path, sheet: str) -> dict[int, list[tuple[int, str]]]:
    """1-based row -> [(0-based column, error text)] of an ODS sheet's error cells.

    LibreOffice saves a failed formula with its last number (``office:value="0"``) and
    marks it ``calcext:value-type="error"``: the reader returns the 0, so a #DIV/0! would
    load as nought. Rows and cells repeated by ``number-*-repeated`` are counted as the
    reader counts them (the walk is the one ``limits.ods_problem`` bounds beforehand).
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return {}
    found: dict[int, list[tuple[int, str]]] = {}
    with archive:
        try:
            entry = archive.getinfo("content.xml")
        except KeyError:
            return {}
        inside = False
        row = col = repeat = 0
        pending: tuple[int, int] | None = None
        count = 0
        tail = b""
        with archive.open(entry) as fh:
            while chunk := fh.read(_CHUNK):
                data = tail + chunk
                cut = data.rfind(b"<")
                data, tail = (data[:cut], data[cut:]) if cut > 0 else (data, b"")
                if len(tail) > _CHUNK:
                    data, tail = data + tail, b""
                for match in _ODS_TOKEN.finditer(data):
                    closing, tag, attrs, text = match.groups()
                    if text is not None:
                        if pending is not None and inside:
                            value = html.unescape(text.decode("utf-8", "replace")).strip()
                            found.setdefault(pending[0], []).append((pending[1], value))
                            count += 1
                            if count >= MAX_ERROR_CELLS:
                                return found
                        pending = None
                        continue
                    if tag == b"table":
                        if not closing:
                            name = _ODS_NAME.search(attrs)
                            label = name.group(1) if name else b""
                            inside = html.unescape(label.decode("utf-8", "replace")) == sheet
                            row = 0
                        elif inside:
                            return found
                        continue
                    if tag == b"table-row":
                        if closing:
                            row += repeat
                        else:
                            rows = _ODS_ROWS.search(attrs)
                            repeat, col = int(rows.group(1)) if rows else 1, 0
                            if attrs.rstrip().endswith(b"/"):
                                row += repeat
                        continue
                    if closing:
                        continue
                    columns = _ODS_COLUMNS.search(attrs)
                    start = col
                    col += int(columns.group(1)) if columns else 1
                    pending = (row + 1, start) if _ODS_ERROR.search(attrs) else None
    return found


# Error codes of the binary formats ([MS-XLSB] 2.5.97.2 BErr, [MS-XLS] 2.5.10 BErr).
_BERR = {
    0x00: "#NULL!",
    0x07: "#DIV/0!",
    0x0F: "#VALUE!",
    0x17: "#REF!",
    0x1D: "#NAME?",
    0x24: "#NUM!",
    0x2A: "#N/A",
    0x2B: "#GETTING_DATA",
}
_BRT_ROW_HDR, _BRT_CELL_ERROR, _BRT_FMLA_ERROR, _BRT_END_SHEET_DATA = 0x00, 0x03, 0x0B, 0x92


def xlsb_error_cells(path: Path, sheet: str) -> dict[int, list[tuple[int, str]]]:
    """1-based row -> [(0-based column, error text)] of an .xlsb sheet's error cells
    (BrtCellError, and BrtFmlaError: a formula whose result is an error)."""
    from connectors.spreadsheets.binary_limits import _biff12_records, _xlsb_sheet_names

    found: dict[int, list[tuple[int, str]]] = {}
    errors = (zipfile.BadZipFile, OSError, ValueError, RuntimeError)
    with _sheet_stream(path, sheet, _xlsb_sheet_names, errors) as fh:
        if fh is None:
            return {}
        row = count = 0
        for typ, body in _biff12_records(fh, keep=9):
            if typ == _BRT_ROW_HDR and len(body) >= 4:
                row = int.from_bytes(body[:4], "little")
            elif typ in (_BRT_CELL_ERROR, _BRT_FMLA_ERROR) and len(body) >= 9:
                column = int.from_bytes(body[:4], "little")
                text = _BERR.get(body[8], "#ERROR!")
                found.setdefault(row + 1, []).append((column, text))
                count += 1
                if count >= MAX_ERROR_CELLS:
                    break
            elif typ == _BRT_END_SHEET_DATA:
                break
    return found


_XLS_BOOLERR, _XLS_FORMULA = 0x0205, 0x0006


def xls_error_cells(path: Path, sheet: str) -> dict[int, list[tuple[int, str]]]:
    """1-based row -> [(0-based column, error text)] of an .xls sheet's error cells
    (BOOLERR records holding an error, and FORMULA records whose cached result is one).
    The workbook stream is read whole, as ``binary_limits.xls_problem`` already did."""
    import olefile

    from connectors.spreadsheets.binary_limits import (
        _BOF,
        _EOF,
        _boundsheets,
        _workbook_streams,
        _xls_records,
    )

    try:
        if not olefile.isOleFile(str(path)):
            return {}
        with olefile.OleFileIO(str(path)) as ole:
            streams = _workbook_streams(ole)
            if not streams:
                return {}
            data = ole.openstream(streams[0]).read()
    except (OSError, ValueError, IndexError):
        return {}
    start = next((at for at, name in _boundsheets(data) if name == sheet), None)
    if start is None:
        return {}
    found: dict[int, list[tuple[int, str]]] = {}
    depth = count = 0
    seen_bof = False
    for typ, at, length in _xls_records(data, start):
        if depth:  # an embedded chart's substream
            depth += (typ == _BOF) - (typ == _EOF)
            continue
        if typ == _BOF:
            depth, seen_bof = (1 if seen_bof else 0), True
            continue
        if typ == _EOF:
            break
        code = None
        if typ == _XLS_BOOLERR and length >= 8 and data[at + 7] == 1:
            code = data[at + 6]
        elif typ == _XLS_FORMULA and length >= 14:
            value = data[at + 6 : at + 14]
            if value[6:8] == b"\xff\xff" and value[0] == 0x02:
                code = value[2]
        if code is not None:
            row, column = (
                int.from_bytes(data[at : at + 2], "little"),
                int.from_bytes(data[at + 2 : at + 4], "little"),
            )
            found.setdefault(row + 1, []).append((column, _BERR.get(code, "#ERROR!")))
            count += 1
            if count >= MAX_ERROR_CELLS:
                break
    return found
