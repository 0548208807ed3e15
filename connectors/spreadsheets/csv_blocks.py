"""A CSV file's data rows read straight into Arrow string columns, block by block, wherever
that gives exactly the rows Python's csv reader gives; the ordinary reader otherwise.

Why: Python's csv reader with the guards around it (line bound, unclosed quote, decoding)
cost ~2 s a million rows, and turning its lists of cells into Arrow as much again.
``pyarrow.csv`` splits a block of lines into string columns in C. It is trusted with a
block only when every line is one record and the two readers cannot disagree:

- the block decodes strictly in the file's encoding (UTF-8 or cp1252; other encodings
  are read the ordinary way throughout);
- no NUL byte (Python's reader refuses one), no carriage return but before a line feed (a
  lone one ends a line for Python), no line longer than the line bound
  (``HUB_MAX_FIELD_CHARS``, counted in bytes here, which is never fewer than characters);
- a line holding a quote is whole fields, each unquoted text without a quote or a quoted
  field closed on the same line (so no record spans lines and no quote is left open);
- no byte-order mark (pyarrow drops one opening its input), no empty line (Python counts it
  as a row), and every line has as many cells as the block's first (pyarrow's rule).

A block of one-line records that breaks only the last rule is split by Python's csv
reader, that block alone (``RowsBlock``). A block that breaks any other rule, and the rest
of the file after it, is read by the ordinary reader from that byte (``CsvData.rest``), so
every guard and message there (a broken line, an unclosed quote, an undecodable byte, with
its line number) is exactly the one a file read wholly that way gets.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

Row = list[Any]
# Encodings whose blocks go the Arrow way, by codec name, and the codec for the bytes after
# the header (a UTF-8 BOM is only ever at the start of the file, before the header).
FAST_CODECS = {"utf-8": "utf-8", "utf-8-sig": "utf-8", "cp1252": "cp1252"}
# Bytes read per block for each row a batch holds: ~2 chunk_rows rows of a typical file.
BYTES_PER_ROW = 128
_BOM = codecs.BOM_UTF8
_STRINGS = pa.string()


@dataclass
class CsvData:
    """Where a CSV file's data rows start, and how to read the rest the ordinary way."""

    path: Path
    offset: int  # byte just after the header row
    codec: str  # one of FAST_CODECS' values
    delimiter: str
    line_limit: int  # characters, as the ordinary reader's line bound
    first_row: int  # row number (the csv reader's record count) of the first data row
    first_line: int  # lines before ``offset`` (the csv reader's line_num)
    # (byte offset, first row number, lines before) -> (row number, cells), ordinary reader
    rest: Callable[[int, int, int], Iterator[tuple[int, Row]]]


@dataclass
class ArrowBlock:
    """Rows ``first``, ``first + 1``, ... of the file, every cell a string column."""

    first: int
    table: pa.Table

    def rows(self) -> tuple[list[int], list[Row]]:
        """The block as the ordinary reader's (row numbers, lists of cells)."""
        columns = [column.to_pylist() for column in self.table.columns]
        rows = [list(cells) for cells in zip(*columns, strict=True)]
        return list(range(self.first, self.first + len(rows))), rows


@dataclass
class RowsBlock:
    """Rows read by Python's csv reader: their numbers and lists of cells."""

    numbers: list[int]
    rows: list[Row]


ARROW, ROWS, REST = 0, 1, 2


def _line_pattern(delimiter: str) -> str:
    """RE2 pattern of a line of whole fields (see the module docstring), as Python's csv
    reader and pyarrow both read them the same way."""
    inside = re.escape(delimiter)
    plain = f'[^"{inside}\\r\\n]*'
    quoted = '"(?:[^"\\r\\n]|"")*"'
    field = f"(?:{plain}|{quoted})"
    return f"^{field}(?:{inside}{field})*\\r?\\n?$"


class _Examined:
    """One block: which way it goes, its UTF-8 bytes and text, and its line count."""

    __slots__ = ("data", "kind", "lines", "text")

    def __init__(self, kind: int, data: bytes = b"", text: str = "", lines: int = 0) -> None:
        self.kind = kind
        self.data = data
        self.text = text
        self.lines = lines


def _examine(block: bytes, csv_data: CsvData, pattern: str) -> _Examined:
    if b"\x00" in block or block.count(b"\r") != block.count(b"\r\n"):
        return _Examined(REST)
    try:
        text = block.decode(csv_data.codec)
    except UnicodeDecodeError:
        return _Examined(REST)
    data = block if csv_data.codec == "utf-8" else text.encode("utf-8")
    codes = np.frombuffer(data, dtype=np.uint8)
    stops = np.flatnonzero(codes == 10) + 1
    if not data.endswith(b"\n"):
        stops = np.append(stops, len(data))
    lengths = np.diff(stops, prepend=0)
    if int(lengths.max()) > csv_data.line_limit:
        return _Examined(REST)
    lines = len(stops)
    if b'"' in data:
        offsets = np.concatenate(([0], stops)).astype(np.int32)
        array = pa.StringArray.from_buffers(lines, pa.py_buffer(offsets), pa.py_buffer(data))
        quoted = array.filter(pc.match_substring(array, '"'))
        if not pc.all(pc.match_substring_regex(quoted, pattern)).as_py():
            return _Examined(REST)
    empty = ((lengths == 1) & (codes[stops - 1] == 10)) | (
        (lengths == 2) & (codes[stops - 2] == 13)
    )
    if _BOM in data or empty.any():
        return _Examined(ROWS, data, text, lines)
    return _Examined(ARROW, data, text, lines)


def _arrow(examined: _Examined, delimiter: str, line_limit: int) -> pa.Table | None:
    """The block's cells as string columns, or None when its rows are ragged."""
    first = examined.data[: examined.data.find(b"\n") + 1 or len(examined.data)]
    width = first.count(delimiter.encode()) + 1  # an upper bound when quotes hold some
    try:
        table = pacsv.read_csv(
            pa.py_buffer(examined.data),
            read_options=pacsv.ReadOptions(
                autogenerate_column_names=True,
                block_size=max(1 << 22, line_limit + 2),  # a row never straddles two
                use_threads=True,
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter,
                quote_char='"',
                double_quote=True,
                escape_char=False,
                newlines_in_values=False,
                ignore_empty_lines=False,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={f"f{i}": _STRINGS for i in range(width)},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                null_values=[],
                check_utf8=False,  # decoded strictly already
            ),
        )
    except pa.ArrowInvalid:
        return None
    if table.num_rows != examined.lines:
        return None
    return table.combine_chunks()


def _python_rows(examined: _Examined, delimiter: str, first: int) -> RowsBlock:
    rows = list(csv.reader(io.StringIO(examined.text, newline=""), delimiter=delimiter))
    return RowsBlock(list(range(first, first + len(rows))), rows)


def blocks(csv_data: CsvData, chunk_rows: int) -> Iterator[ArrowBlock | RowsBlock]:
    """The file's data rows, in order, as Arrow blocks where the rules above allow."""
    size = max(chunk_rows * BYTES_PER_ROW, 256)
    pattern = _line_pattern(csv_data.delimiter)
    offset, row, line = csv_data.offset, csv_data.first_row, csv_data.first_line
    pending = b""
    with csv_data.path.open("rb") as fh:
        fh.seek(offset)
        while True:
            chunk = fh.read(size)
            buffer = pending + chunk if pending else chunk
            if not buffer:
                return
            if chunk:
                cut = buffer.rfind(b"\n") + 1
                if not cut:
                    if len(buffer) > csv_data.line_limit:  # one over-long line: let the
                        break  # ordinary reader say so
                    pending = buffer
                    continue
                block, pending = buffer[:cut], buffer[cut:]
            else:
                block, pending = buffer, b""
            examined = _examine(block, csv_data, pattern)
            if examined.kind == REST:
                break
            table = None
            if examined.kind == ARROW:
                table = _arrow(examined, csv_data.delimiter, csv_data.line_limit)
            if table is not None:
                yield ArrowBlock(row, table)
                count = table.num_rows
            else:
                rows = _python_rows(examined, csv_data.delimiter, row)
                if len(rows.rows) != examined.lines:  # cannot happen for one-line records
                    break
                yield rows
                count = len(rows.rows)
            offset += len(block)
            row += count
            line += count
    rest = csv_data.rest(offset, row, line)
    while chunk_list := list(islice(rest, chunk_rows)):
        yield RowsBlock([n for n, _ in chunk_list], [r for _, r in chunk_list])
