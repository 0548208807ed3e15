"""Extent checks for the binary workbook formats, .xlsb and .xls (issue #18).

Why: the reader builds one dense grid from the first to the furthest cell it finds, whatever
the format. The XML checks in ``limits`` cannot see inside a binary sheet, so a 2 KB .xlsb
with cells at A1 and XFD1048576 was the same 512 GiB bomb as the XLSX one, and an .xls with
cells at A1 and IV65536 cost about 16.7 million cells. Here each sheet's records are walked
without building anything, and its extent is held to the same ``Limits``:

- .xlsb (a zip of BIFF12 record streams): every worksheet part is streamed from the zip in
  bounded chunks; its declared dimension (BrtWsDim) and the furthest row (BrtRowHdr) and
  column (each cell record) are measured. Sheets are named from ``xl/workbook.bin``.
- .xls (BIFF8 records in an OLE2 compound file, read with ``olefile``): the workbook
  stream may not claim more bytes than the file holds; each sheet named by a BOUNDSHEET
  record is walked from where that record says it starts, as the reader does, and its
  DIMENSIONS record (the reader reserves room for that many cells before reading any) and
  its furthest cell are measured. The reader reads every sheet of an .xls at once, so the
  sheets' extents together are held to the limit too.

A file that is not a zip or compound file at all, or whose records are cut short, is left
to the reader, which says what is wrong with it (a zip part that cannot be unpacked is
refused by ``limits.workbook_problem``). olefile holds the .xls workbook stream in memory
while it is walked: at most the file's size, which ``HUB_MAX_FILE_BYTES`` bounds. Cell
values are never read.
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import olefile

from connectors.spreadsheets.limits import _MAX_COLUMNS, Limits, _extent_problem
from connectors.spreadsheets.workbook_parts import part_of

_CHUNK = 1 << 20
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")
_HEAD = struct.Struct("<HH")

# --- .xlsb --------------------------------------------------------------------------------

# [MS-XLSB] 2.3.2 record types.
_BRT_ROW_HDR = 0x0000
_BRT_CELLS = frozenset(range(0x0001, 0x000C))  # BrtCellBlank .. BrtFmlaError: Cell first
_BRT_END_SHEET_DATA = 0x0092
_BRT_WS_DIM = 0x0094
_BRT_BUNDLE_SH = 0x009C
_BRT_END_BUNDLE_SHS = 0x0090
_RELATIONSHIP = re.compile(rb"<(?:\w+:)?Relationship\s[^>]*>")
_REL_ID = re.compile(rb'\sId="([^"]{1,255})"')
_REL_TARGET = re.compile(rb'\sTarget="([^"]{1,1024})"')


def _biff12_records(fh: BinaryIO, keep: int = 16) -> Iterator[tuple[int, bytes]]:
    """(type, first ``keep`` bytes of the body) of each BIFF12 record, streamed.

    A record's type is 1-2 bytes and its size 1-4 bytes, 7 bits each with a continuation
    bit ([MS-XLSB] 2.1.4). Never more than a chunk is held: a body beyond what is kept is
    read past in chunks, and a size that runs past the end of the part just ends it."""
    buf = b""
    pos = 0
    eof = False
    while True:
        if not eof and len(buf) - pos < 6 + keep:
            more = fh.read(_CHUNK)
            eof = not more
            buf, pos = buf[pos:] + more, 0
        end = len(buf)
        if pos >= end:
            return
        typ = buf[pos]
        pos += 1
        if typ & 0x80:
            if pos >= end:
                return
            typ = (typ & 0x7F) | ((buf[pos] & 0x7F) << 7)
            pos += 1
        size = shift = 0
        for _ in range(4):
            if pos >= end:
                return
            byte = buf[pos]
            pos += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        yield typ, buf[pos : pos + min(size, keep)]
        if pos + size <= end:
            pos += size
            continue
        left = size - (end - pos)
        buf, pos = b"", 0
        while left > 0 and not eof:
            skipped = len(fh.read(min(left, _CHUNK)))
            eof = skipped == 0
            left -= skipped


def _xlsb_sheet_extent(
    fh: BinaryIO, limits: Limits
) -> tuple[tuple[int, int] | None, tuple[int, int]]:
    """The declared (rows, columns) of a BIFF12 worksheet, if any, and its furthest cell;
    0-based in the file, counted from 1 here. The records are parsed in place, chunk by
    chunk (a sheet has one record per cell: a generator per record was 3 times slower)."""
    declared: tuple[int, int] | None = None
    max_row = max_col = row = 0
    u32 = _U32.unpack_from
    buf, pos, eof = b"", 0, False
    while not eof:
        more = fh.read(_CHUNK)
        eof = not more
        buf, pos = buf[pos:] + more, 0
        end = len(buf)
        stop = end if eof else end - 32  # a record's head and first 16 bytes are all here
        try:
            while pos < stop:
                typ = buf[pos]
                pos += 1
                if typ & 0x80:  # [MS-XLSB] 2.1.4: type in 1-2 bytes, size in 1-4
                    typ = (typ & 0x7F) | ((buf[pos] & 0x7F) << 7)
                    pos += 1
                size = 0
                for shift in (0, 7, 14, 21):
                    byte = buf[pos]
                    pos += 1
                    size |= (byte & 0x7F) << shift
                    if byte < 0x80:
                        break
                if typ in _BRT_CELLS and size >= 4:
                    col = u32(buf, pos)[0] + 1
                    if col > max_col:
                        max_col = col
                    if row >= max_row:
                        max_row = row + 1
                    if max_col > _MAX_COLUMNS or max_row * max_col > limits.cells:
                        return declared, (max_row, max_col)
                elif typ == _BRT_ROW_HDR and size >= 4:
                    row = u32(buf, pos)[0]
                elif typ == _BRT_WS_DIM and declared is None and size >= 16:
                    # RfX: rwFirst, rwLast, colFirst, colLast
                    declared = (u32(buf, pos + 4)[0] + 1, u32(buf, pos + 12)[0] + 1)
                elif typ == _BRT_END_SHEET_DATA:
                    break  # the reader stops here too
                pos += size
            else:
                if pos > end:  # the last record's body runs on past this chunk
                    _skip(fh, pos - end)
                    pos = end
                continue
        except (IndexError, struct.error):
            pass  # a record cut short by the end of the part: the reader refuses it
        break
    return declared, (max_row, max_col)


def _skip(fh: BinaryIO, count: int) -> None:
    """Read past ``count`` bytes of the stream (or to its end), a chunk at a time."""
    while count > 0 and (skipped := len(fh.read(min(count, _CHUNK)))):
        count -= skipped


def _normalised(name: str) -> str:
    """A zip entry name as the reader looks it up: forward slashes, any case."""
    return name.replace("\\", "/").lower()


def _xlsb_sheet_names(archive: zipfile.ZipFile) -> dict[str, str]:
    """Normalised part name -> sheet name, from xl/workbook.bin and its relationships, as
    the reader finds them; empty if they cannot be read (the parts are then named by file)."""
    entries = {_normalised(e.filename): e for e in archive.infolist()}
    book = entries.get("xl/workbook.bin")
    rels = entries.get("xl/_rels/workbook.bin.rels")
    if book is None or rels is None:
        return {}
    with archive.open(rels) as fh:
        xml = fh.read(_CHUNK)
    targets: dict[str, str] = {}
    for tag in _RELATIONSHIP.findall(xml):
        rel_id, target = _REL_ID.search(tag), _REL_TARGET.search(tag)
        if rel_id and target:
            targets[rel_id.group(1).decode("utf-8", "replace")] = target.group(1).decode(
                "utf-8", "replace"
            )
    names: dict[str, str] = {}
    with archive.open(book) as fh:
        for typ, body in _biff12_records(fh, keep=1024):
            if typ == _BRT_END_BUNDLE_SHS:
                break
            if typ != _BRT_BUNDLE_SH or len(body) < 12:
                continue
            # hsState u32, iTabID u32, strRelID (u32 count, UTF-16), strName (same)
            count = _U32.unpack_from(body, 8)[0]
            if count == 0xFFFFFFFF or 12 + 2 * count + 4 > len(body):
                continue
            rel_id = body[12 : 12 + 2 * count].decode("utf-16-le", "replace")
            at = 12 + 2 * count
            name_len = min(_U32.unpack_from(body, at)[0], (len(body) - at - 4) // 2)
            name = body[at + 4 : at + 4 + 2 * name_len].decode("utf-16-le", "replace")
            if rel_id in targets:
                names[part_of(targets[rel_id])] = _printable(name)
    return names


def xlsb_problem(archive: zipfile.ZipFile, limits: Limits) -> str | None:
    """Why this .xlsb must not be read, or None: a worksheet part (named by the workbook,
    or any binary part under xl/worksheets/) whose extent is over the limit."""
    try:
        names = _xlsb_sheet_names(archive)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, struct.error):
        names = {}  # unnamed: the sheets are still measured, named by part
    for entry in archive.infolist():
        part = _normalised(entry.filename)
        is_sheet = part.startswith("xl/worksheets/") and part.endswith(".bin")
        if part not in names and not is_sheet:
            continue
        name = names.get(part) or part.rsplit("/", 1)[-1]
        with archive.open(entry) as fh:  # a damaged part raises: see workbook_problem
            declared, placed = _xlsb_sheet_extent(fh, limits)
        if declared and (problem := _extent_problem(name, *declared, "declares", limits)):
            return problem
        if problem := _extent_problem(name, *placed, "has a cell at", limits):
            return problem
    return None


# --- .xls ---------------------------------------------------------------------------------

# [MS-XLS] 2.3 record types.
_BOF, _EOF, _BOUNDSHEET, _DIMENSIONS = 0x0809, 0x000A, 0x0085, 0x0200
_MULRK, _MULBLANK = 0x00BD, 0x00BE
# Cell records: each starts with its row (u16) and column (u16).
_XLS_CELLS = frozenset({0x00FD, 0x0203, 0x027E, 0x0201, 0x0205, 0x0006, 0x0204, 0x00D6})
# The stream names the reader tries, in its order (it takes the first it finds).
_WORKBOOK_STREAMS = ("Workbook", "Book", "WORKBOOK", "BOOK")


def _xls_records(data: bytes, start: int) -> Iterator[tuple[int, int, int]]:
    """(type, body offset, body length) of each BIFF record from ``start``; a record cut
    short by the end of the stream ends it (the reader refuses such a stream)."""
    end = len(data)
    pos = start
    while pos + 4 <= end:
        typ, length = _HEAD.unpack_from(data, pos)
        if pos + 4 + length > end:
            return
        yield typ, pos + 4, length
        pos += 4 + length


def _boundsheets(data: bytes) -> list[tuple[int, str]]:
    """(stream offset, name) of each sheet, from the globals substream up to its EOF."""
    sheets = []
    for typ, at, length in _xls_records(data, 0):
        if typ == _EOF:
            break
        if typ != _BOUNDSHEET or length < 6:
            continue
        offset = _U32.unpack_from(data, at)[0]
        sheets.append((offset, _short_string(data[at + 6 : at + length])))
    return sheets


def _short_string(body: bytes) -> str:
    """A BIFF8 ShortXLUnicodeString (count, flags, characters); best effort, for messages."""
    if len(body) < 2:
        return "sheet"
    count, flags = body[0], body[1]
    if flags & 1:
        text = body[2 : 2 + 2 * count].decode("utf-16-le", "replace")
    else:
        text = body[2 : 2 + count].decode("latin-1")
    return _printable(text)


def _printable(name: str) -> str:
    """A sheet name fit for a message: a hostile file's control characters would garble
    the output and the logs."""
    return "".join(ch if ch.isprintable() else "?" for ch in name[:64]) or "sheet"


def _declared_cells(body: bytes) -> tuple[int, int]:
    """The rows and columns the reader reserves room for from a DIMENSIONS record, with its
    arithmetic: 32-bit rows (16-bit before BIFF8), end-exclusive, wrapping on a first row
    past the last (so a reversed range is over four billion rows, as the reader sees it)."""
    if len(body) == 14:
        first_row, last_row = _U32.unpack_from(body)[0], _U32.unpack_from(body, 4)[0]
        first_col, last_col = _U16.unpack_from(body, 8)[0], _U16.unpack_from(body, 10)[0]
    elif len(body) == 10:
        first_row, last_row, first_col, last_col = struct.unpack_from("<HHHH", body)
    else:
        return 0, 0
    if first_col > 0xFF or last_col < first_col:
        first_col = 0
    if last_row < 1 or last_col < 1:
        return 1, 1
    return (last_row - first_row) % (1 << 32), last_col - first_col


class _Overlap(Exception):
    """Sheets that start inside one another: walking them all would take too long."""


def _xls_sheet_extent(
    data: bytes, start: int, budget: list[int]
) -> tuple[tuple[int, int] | None, tuple[int, int]]:
    """The largest declared (rows, columns) and the furthest cell of the sheet starting at
    ``start``, skipping embedded substreams (charts) as the reader does. ``budget`` is the
    number of records all sheets may still take; raises _Overlap when it runs out."""
    declared: tuple[int, int] | None = None
    max_row = max_col = depth = 0
    seen_bof = False
    for typ, at, length in _xls_records(data, start):
        budget[0] -= 1
        if budget[0] < 0:
            raise _Overlap
        if depth:
            depth += (typ == _BOF) - (typ == _EOF)
            continue
        if typ == _BOF:
            depth, seen_bof = (1 if seen_bof else 0), True
        elif typ == _EOF:
            break
        elif typ in _XLS_CELLS and length >= 4:
            row, col = _HEAD.unpack_from(data, at)
            max_row, max_col = max(max_row, row + 1), max(max_col, col + 1)
        elif typ in (_MULRK, _MULBLANK) and length >= 6:
            row, first = _HEAD.unpack_from(data, at)
            last = _U16.unpack_from(data, at + length - 2)[0]
            max_row, max_col = max(max_row, row + 1), max(max_col, first + 1, last + 1)
        elif typ == _DIMENSIONS:
            rows, cols = _declared_cells(data[at : at + length])
            if declared is None or rows * cols > declared[0] * declared[1]:
                declared = (rows, cols)
    return declared, (max_row, max_col)


def _workbook_streams(ole: olefile.OleFileIO) -> list[list[str]]:
    """Every stream the reader could take as the workbook: it searches all directory
    entries by exact name, so any of them, at any depth, is measured."""
    return [p for p in ole.listdir(streams=True, storages=False) if p[-1] in _WORKBOOK_STREAMS]


def xls_problem(path: Path, limits: Limits) -> str | None:
    """Why this .xls must not be read, or None (see the module). A file that is not a
    compound file, or that olefile cannot parse, is left to the reader."""
    try:
        if not olefile.isOleFile(str(path)):
            return None
        ole = olefile.OleFileIO(str(path))
    except (OSError, ValueError, struct.error, IndexError, RecursionError):
        return None
    with ole:
        file_size = path.stat().st_size
        try:
            streams = _workbook_streams(ole)
        except (OSError, ValueError, struct.error, IndexError, RecursionError):
            return None
        for stream in streams:
            size = ole.get_size(stream)
            if size > file_size:
                return (
                    f"the workbook's data claims {size:,} bytes in a file of {file_size:,} "
                    "(a damaged or hostile file, which would make the reader fill memory); "
                    "open it in Excel and save it again, or export the sheet as CSV"
                )
            try:
                data = ole.openstream(stream).read()
            except (OSError, ValueError, struct.error, IndexError):
                return None
            if problem := _biff_problem(data, limits):
                return problem
    return None


def _biff_problem(data: bytes, limits: Limits) -> str | None:
    """The BIFF workbook stream's sheets, each declared and placed extent, and their sum."""
    budget = [len(data) // 4 + 1]  # records are at least 4 bytes: one pass over the stream
    total = 0
    seen: dict[int, tuple[int, int]] = {}
    for start, name in _boundsheets(data):
        if start > len(data):
            return (
                f"worksheet {name} starts at byte {start:,} of a {len(data):,}-byte workbook "
                "stream (a damaged file); open it in Excel and save it again, or export the "
                "sheet as CSV"
            )
        if start in seen:
            placed = seen[start]
        else:
            try:
                declared, placed = _xls_sheet_extent(data, start, budget)
            except _Overlap:
                return (
                    "the workbook's sheets start inside one another (a damaged or hostile "
                    "file); open it in Excel and save it again, or export the sheet as CSV"
                )
            seen[start] = placed
            if declared and (problem := _extent_problem(name, *declared, "declares", limits)):
                return problem
        if problem := _extent_problem(name, *placed, "has a cell at", limits):
            return problem
        total += placed[0] * placed[1]
        if total > limits.cells:
            return (
                f"the workbook's sheets together span {total:,} cells (the reader reads "
                f"every sheet of an .xls at once), over the limit of {limits.cells:,} "
                "(HUB_MAX_CELLS); delete the stray cells far from the data (Ctrl+End shows "
                "the last one) or the sheets not needed, or export the sheet as CSV"
            )
    return None
