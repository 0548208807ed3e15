"""Open a member's CSV or workbook, find its header row and stream its rows of cells.

Members export from whatever they use: Excel on Windows (cp1252, or UTF-16 "Unicode text"),
LibreOffice (semicolons), CRMs that write a title block above the table. This module copes
with all of that and hands on plain rows of cells, one at a time, so a 200,000-row file is
never held as Python objects at once. Anything that makes the file unreadable as a whole
raises :class:`SpreadsheetError` naming the member, the file and the fix.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import charset_normalizer

from connectors.errors import SpreadsheetError
from connectors.members import (
    MAX_FILES_PER_TABLE,
    Member,
    SpreadsheetTable,
    header_key,
    is_glob,
    normalise_label,
)
from connectors.spreadsheets.csv_blocks import FAST_CODECS, CsvData
from connectors.spreadsheets.csv_guards import not_text, watch_quotes
from connectors.spreadsheets.limits import Limits, file_problem, workbook_problem
from connectors.values import cell_text

CSV_SUFFIXES = frozenset({".csv", ".txt", ".tsv"})
EXCEL_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xls", ".ods", ".xlsb"})
DELIMITERS = (",", ";", "\t", "|")
HEADER_SCAN_ROWS = 30  # non-empty rows searched for the header when header_row is not set
SAMPLE_BYTES = 64 * 1024
_CHUNK = 1024 * 1024

Row = list[Any]


def column_letters(index: int) -> str:
    """0-based column index as the spreadsheet shows it (0 -> A, 27 -> AB)."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


class MissingColumnsError(SpreadsheetError):
    """Mapped headers absent from the header row; carries what was found, for ``hub check``."""

    def __init__(
        self,
        org_id: str,
        path: str,
        problem: str,
        fix: str,
        *,
        header_row: int,
        headers: list[str],
        missing: dict[str, str | None],
    ) -> None:
        super().__init__(org_id, path, problem, fix)
        self.header_row = header_row
        self.headers = headers
        self.missing = missing  # canonical field -> closest header in the file (or None)


@dataclass
class OpenedTable:
    """A spreadsheet table ready to stream: where its header is and which column is which."""

    member: Member
    entity: str
    path: Path
    kind: str  # "csv" | "excel"
    header_row: int  # 1-based, as the spreadsheet user sees it
    headers: list[str]  # header cells as written (trailing empty columns dropped)
    columns: dict[str, int]  # canonical field -> 0-based column index
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    first_column: int = 0  # 0-based sheet column of headers[0] (a workbook may start at C)
    # A CSV file's data rows for the Arrow reader (csv_blocks), when its encoding allows.
    csv_data: CsvData | None = None
    _rows: Iterator[tuple[int, Row]] = field(default_factory=lambda: iter(()), repr=False)
    _handle: IO[str] | None = field(default=None, repr=False)

    def header_of(self, field_name: str) -> str:
        """The header, as written in the file, of a mapped canonical field."""
        return self.headers[self.columns[field_name]]

    def rows(self) -> Iterator[tuple[int, Row]]:
        """(row number, cells) for every row after the header, read lazily.

        Blank rows are passed on too (cheaper than testing every row here); the record
        reader drops rows with nothing in any mapped column.
        """
        return self._rows

    def close(self) -> None:
        """Release the file handle (CSV); workbooks are read by calamine and need nothing."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> OpenedTable:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _error(member: Member, entity: str, path: Path, problem: str, fix: str) -> SpreadsheetError:
    return SpreadsheetError(member.org_id, str(path), f"{entity} table: {problem}", fix)


def _config_key(member: Member, entity: str, key: str) -> str:
    return f"connector.tables.{entity}.{key} in {member.config_path.name}"


def table_path(member: Member, entity: str) -> Path:
    """Absolute path of the file configured for ``entity``."""
    table = member.connector.tables[entity]
    return member.resolve(table.file)


def matching_files(path: Path) -> list[Path]:
    """The files a table's ``file`` names: itself, or those its pattern matches in its one
    folder, in name order, without the lock files Excel and LibreOffice keep beside an open
    workbook (~$name, .~lock.name#); at most one more than the limit, so a caller can tell
    the limit was passed. Never raises: a missing folder matches nothing."""
    if not is_glob(path):
        return [path]
    # '[' starts a character class in a pattern, but it is a plain character in a name such
    # as 'sessions [2025]-*.csv': only * and ? are wildcards here.
    pattern = path.name.replace("[", "[[]")
    matches: list[Path] = []
    try:
        for found in path.parent.glob(pattern):
            if found.name.startswith(("~$", ".")):
                continue
            matches.append(found)
            if len(matches) > MAX_FILES_PER_TABLE:
                break
    except OSError:
        return []
    return sorted(matches)


def table_files(member: Member, entity: str) -> list[Path]:
    """The files of ``entity``: its one file, or those its pattern matches, in name order.

    A pattern matches names in its one folder only (never below), leaves out the lock
    files Excel and LibreOffice keep beside an open workbook (~$name, .~lock.name#), and
    is bounded: a folder of thousands of matches is a mistake, not a table.
    """
    path = table_path(member, entity)
    if not is_glob(path):
        return [path]
    folder = path.parent
    key = _config_key(member, entity, "file")
    if not folder.is_dir():
        raise _error(
            member, entity, path, f"folder {folder} not found", f"create it, or correct {key}"
        )
    matches = matching_files(path)
    if len(matches) > MAX_FILES_PER_TABLE:
        raise _error(
            member,
            entity,
            path,
            f"the pattern matches over {MAX_FILES_PER_TABLE} files",
            f"move old exports to another folder, or narrow the pattern in {key}",
        )
    if not matches:
        raise _error(
            member,
            entity,
            path,
            f"no file in {folder} matches '{path.name}'",
            f"put the files there, or correct the pattern in {key}",
        )
    return sorted(matches)


def open_table(member: Member, entity: str, path: Path | None = None) -> OpenedTable:
    """Open the file configured for ``entity`` (or ``path``, one of its files); raise
    SpreadsheetError if it cannot be read."""
    table = member.connector.tables[entity]
    path = path or table_path(member, entity)
    if is_glob(path):
        raise _error(
            member,
            entity,
            path,
            "this table has several files; each is opened on its own",
            "open one of table_files(member, entity)",
        )
    check_file(member, entity, path)
    if path.suffix.lower() in EXCEL_SUFFIXES:
        return _open_workbook(member, entity, table, path)
    return _open_csv(member, entity, table, path)


def check_file(member: Member, entity: str, path: Path) -> None:
    """Raise SpreadsheetError unless ``path`` is the member's own, readable, regular file
    within the limits: run before anything opens it for reading or hashing."""
    from connectors.members import other_member_ids
    from connectors.scope import data_file_problem

    # Checked again at read time: a link may have been swapped in since the file was loaded,
    # or a member named after a folder on the path may have joined. A remote location's
    # files are read from the hub's copy, under the cache's folder named after the member.
    others = other_member_ids(member.config_path)
    if problem := data_file_problem(member.org_id, path, member.files_root, others):
        raise _error(
            member,
            entity,
            path,
            problem,
            f"correct {_config_key(member, entity, 'file')}; the hub reads only the member's "
            "own data folder",
        )
    fix_path = (
        f"put the file at {path}, or correct {_config_key(member, entity, 'file')} "
        "(relative paths start from the YAML file's folder)"
    )
    if not path.exists():
        raise _error(member, entity, path, "file not found", fix_path)
    if path.is_dir():
        raise _error(member, entity, path, "this is a folder, not a file", fix_path)
    if not path.is_file():  # a named pipe or a device: opening it could block for ever
        raise _error(
            member, entity, path, "this is not a regular file (a pipe or a device)", fix_path
        )
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except PermissionError:
        raise _error(
            member,
            entity,
            path,
            "permission denied when opening the file",
            "let the hub's user read the file (check its permissions), or close the program "
            "that has it locked",
        ) from None
    except OSError as err:
        raise _error(
            member,
            entity,
            path,
            f"cannot open the file ({err.strerror})",
            "check the file and the disk it is on",
        ) from None
    if path.stat().st_size == 0:
        raise _error(
            member,
            entity,
            path,
            "the file is empty",
            "export the data again; the file has no rows at all",
        )
    limits = Limits.from_env()
    problem = file_problem(path, limits)
    if problem is None and path.suffix.lower() in EXCEL_SUFFIXES:
        problem = workbook_problem(path, limits)
    if problem:
        raise _error(
            member,
            entity,
            path,
            problem,
            "the hub checks member files against limits before reading them (README: "
            "limits for member files)",
        )


# --- CSV --------------------------------------------------------------------------------


def detect_encoding(path: Path) -> str:
    """The file's text encoding: BOM, UTF-16 NUL pattern, strict UTF-8, else cp1252.

    cp1252 is Excel-on-Windows' default for "CSV" and decodes any byte but five; only when
    those appear is charset-normalizer asked, since its guesses on short UK text are less
    reliable than the Excel default.
    """
    with path.open("rb") as fh:
        head = fh.read(SAMPLE_BYTES)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    utf16 = _utf16_without_bom(head)
    if utf16:
        return utf16
    if _is_utf8(path):
        return "utf-8"
    try:
        head.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        best = charset_normalizer.from_bytes(head).best()
        return best.encoding if best is not None else "cp1252"


def _utf16_without_bom(head: bytes) -> str | None:
    sample = head[:4096]
    half = len(sample) // 2
    if half < 2:
        return None
    even_nuls = sample[0::2].count(0)
    odd_nuls = sample[1::2].count(0)
    if odd_nuls > 0.3 * half and even_nuls < 0.05 * half:
        return "utf-16-le"
    if even_nuls > 0.3 * half and odd_nuls < 0.05 * half:
        return "utf-16-be"
    return None


def _is_utf8(path: Path) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _looks_binary(member: Member, entity: str, path: Path, encoding: str) -> None:
    """Refuse a file that is not text before the CSV reader turns it into rows of noise."""
    with path.open("rb") as fh:
        head = fh.read(SAMPLE_BYTES)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\xd0\xcf\x11\xe0"):
        raise _error(
            member,
            entity,
            path,
            "this is an Excel workbook saved under a CSV name",
            f"rename it to .xlsx (and update {_config_key(member, entity, 'file')}), or "
            "export it from Excel as 'CSV UTF-8'",
        )
    if problem := not_text(head, encoding):
        raise _error(
            member,
            entity,
            path,
            problem,
            "open it in the program that made it and export the data as CSV (in Excel: Save "
            f"As, 'CSV UTF-8') or as .xlsx, and put that file at {path}",
        )


def _sample_text(path: Path, encoding: str) -> str:
    with path.open("rb") as fh:
        raw = fh.read(SAMPLE_BYTES)
    return codecs.getincrementaldecoder(encoding)("replace").decode(raw, final=False)


def _resolve_encoding(member: Member, entity: str, table: SpreadsheetTable, path: Path) -> str:
    if not table.encoding:
        return detect_encoding(path)
    try:
        name = codecs.lookup(table.encoding).name
    except LookupError:
        raise _error(
            member,
            entity,
            path,
            f"unknown encoding '{table.encoding}'",
            f"remove {_config_key(member, entity, 'encoding')} so the hub detects it, or use "
            "a name such as utf-8, cp1252 or utf-16",
        ) from None
    with path.open("rb") as fh:
        bom = fh.read(3)
    if name == "utf-8" and bom.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    return name


def _declared_delimiter(value: str) -> str:
    aliases = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
    return aliases.get(value.strip().lower(), value) if value.strip() else value


def _blank(row: Row) -> bool:
    return all((c == "" or c is None or (type(c) is str and not c.strip())) for c in row)


def sniff_delimiter(text: str, wanted: set[str]) -> str:
    """Pick among , ; tab | the delimiter that best reveals the mapped headers.

    Knowing the headers beats guessing from character counts: a semicolon file with commas
    inside names still has exactly one delimiter that splits out 'Client ID' and 'DOB'.
    Ties fall back to the delimiter giving the most rows of one consistent width.
    """
    lines = text.splitlines()[: HEADER_SCAN_ROWS * 3]
    best: tuple[int, int, int] | None = None
    choice = ","
    for rank, delim in enumerate(DELIMITERS):
        try:
            rows = [r for r in csv.reader(lines, delimiter=delim) if not _blank(r)]
        except csv.Error:  # e.g. a field over the limit: the read itself will say so
            continue
        hits = max(
            (len(wanted & {header_key(c) for c in r}) for r in rows[:HEADER_SCAN_ROWS]),
            default=0,
        )
        widths = [len(r) for r in rows if len(r) > 1]
        consistent = max((widths.count(w) for w in set(widths)), default=0)
        score = (hits, consistent, -rank)
        if best is None or score > best:
            best, choice = score, delim
    return choice


def _open_csv(member: Member, entity: str, table: SpreadsheetTable, path: Path) -> OpenedTable:
    encoding = _resolve_encoding(member, entity, table, path)
    _looks_binary(member, entity, path, encoding)
    wanted = {header_key(h) for h in table.columns.values()}
    if table.delimiter:
        delimiter = _declared_delimiter(table.delimiter)
        if len(delimiter) != 1:
            raise _error(
                member,
                entity,
                path,
                f"delimiter '{table.delimiter}' is not one character",
                f"set {_config_key(member, entity, 'delimiter')} to one of , ; | or tab, "
                "or remove it so the hub detects it",
            )
    else:
        delimiter = sniff_delimiter(_sample_text(path, encoding), wanted)
    # A field (or a line) longer than this is a broken file (or an attack), not data to
    # buffer: a line of 200 million commas made a 2 GB list of empty fields.
    limit = Limits.from_env().field_chars
    csv.field_size_limit(limit)
    handle = path.open("r", encoding=encoding, errors="strict", newline="")
    codec = FAST_CODECS.get(codecs.lookup(encoding).name)
    lines = _BoundedLines(handle, limit, codec)
    reader = csv.reader(lines, delimiter=delimiter)
    numbered = _guard_decoding(member, entity, path, encoding, reader)
    try:
        header_row, headers, columns, rest = _find_header(member, entity, table, path, numbered)
    except BaseException:
        handle.close()
        raise
    rest = watch_quotes(rest, reader, delimiter, headers)
    lines.codec = None  # the bytes up to the header are counted; the rest need not be
    csv_data = None
    if codec is not None:
        with path.open("rb") as fh:
            bom = len(codecs.BOM_UTF8) if fh.read(3) == codecs.BOM_UTF8 else 0
            offset = bom + lines.bytes_read
            fh.seek(max(offset - 1, 0))
            line_end = fh.read(1) in (b"\n", b"\r")
    if codec is not None and line_end:
        csv_data = CsvData(
            path=path,
            offset=offset,
            codec=codec,
            delimiter=delimiter,
            line_limit=limit,
            first_row=header_row + 1,
            first_line=reader.line_num,
            rest=lambda offset, row, line: _csv_rows_from(
                member,
                entity,
                path,
                (encoding, codec),
                delimiter,
                limit,
                headers,
                offset,
                row,
                line,
            ),
        )
    return OpenedTable(
        member=member,
        entity=entity,
        path=path,
        kind="csv",
        header_row=header_row,
        headers=headers,
        columns=columns,
        encoding=encoding,
        delimiter=delimiter,
        csv_data=csv_data,
        _rows=rest,
        _handle=handle,
    )


class _LinesAfter:
    """A csv reader started part-way through a file, counting lines from the file's start
    (for the messages and the unclosed-quote guard, which name file lines)."""

    def __init__(self, reader: Any, before: int) -> None:
        self._reader = reader
        self._before = before

    def __iter__(self) -> Any:
        return iter(self._reader)

    @property
    def line_num(self) -> int:
        return self._before + self._reader.line_num


def _csv_rows_from(
    member: Member,
    entity: str,
    path: Path,
    encodings: tuple[str, str],
    delimiter: str,
    limit: int,
    headers: list[str],
    offset: int,
    row: int,
    line: int,
) -> Iterator[tuple[int, Row]]:
    """The ordinary reader (line bound, decoding and unclosed-quote guards) from byte
    ``offset`` on, a record boundary, numbering rows from ``row`` and lines after ``line``:
    what the Arrow reader hands over when a block is not one it can read exactly.
    ``encodings``: the file's (for messages), and the codec for the bytes after the header."""
    encoding, codec = encodings
    with path.open("rb") as raw:
        raw.seek(offset)
        handle = io.TextIOWrapper(raw, encoding=codec, errors="strict", newline="")
        reader = _LinesAfter(csv.reader(_BoundedLines(handle, limit), delimiter=delimiter), line)
        numbered = _guard_decoding(member, entity, path, encoding, reader, start=row)
        yield from watch_quotes(numbered, reader, delimiter, headers)


class _BoundedLines:
    """The file's lines for the CSV reader, each read with a bound: a longer one is a
    ``csv.Error`` (a broken file), found before it is split into fields."""

    def __init__(self, handle: Any, limit: int, codec: str | None = None) -> None:
        self._readline = handle.readline
        self._limit = limit
        # While set, the bytes of the lines read so far are counted (the header's end, for
        # csv_blocks: a text file's tell() is an opaque cookie, not a byte offset).
        self.codec = codec
        self.bytes_read = 0

    def __iter__(self) -> _BoundedLines:
        return self

    def __next__(self) -> str:
        line = self._readline(self._limit + 1)
        if not line:
            raise StopIteration
        if len(line) > self._limit:
            raise csv.Error(
                f"a line of over {self._limit:,} characters (HUB_MAX_FIELD_CHARS); no row of a "
                "member's table is that long"
            )
        if self.codec is not None:
            self.bytes_read += len(line.encode(self.codec))
        return line


def _guard_decoding(
    member: Member, entity: str, path: Path, encoding: str, reader: Any, start: int = 1
) -> Iterator[tuple[int, Row]]:
    """Turn a decoding or CSV error half-way through into one clear SpreadsheetError.

    ``yield from`` keeps this layer nearly free per row; the row number comes from the
    reader itself only when something goes wrong.
    """
    try:
        yield from enumerate(reader, start=start)
    except UnicodeDecodeError:
        raise _error(
            member,
            entity,
            path,
            f"the file cannot be read as {encoding} (near line {reader.line_num + 1})",
            f"remove {_config_key(member, entity, 'encoding')} so the hub detects the "
            "encoding, or save the file as 'CSV UTF-8'",
        ) from None
    except csv.Error as err:
        raise _error(
            member,
            entity,
            path,
            f"broken CSV near line {reader.line_num + 1} ({err})",
            "export the file again from its program as CSV",
        ) from None


# --- workbooks --------------------------------------------------------------------------


def _calamine_panic(err: BaseException) -> bool:
    """Whether ``err`` is calamine's Rust panic on a damaged file (pyo3's PanicException,
    which derives from BaseException, so ``except Exception`` lets it through)."""
    return type(err).__name__ == "PanicException"


def _open_workbook(member: Member, entity: str, table: SpreadsheetTable, path: Path) -> OpenedTable:
    from python_calamine import CalamineError, CalamineWorkbook

    try:
        try:
            book = CalamineWorkbook.from_path(str(path))
        except BaseException as err:
            if _calamine_panic(err):
                raise ValueError("the reader stopped on a damaged part") from None
            raise
    except (CalamineError, ValueError, OSError) as err:
        raise _error(
            member,
            entity,
            path,
            f"not a readable spreadsheet workbook ({err})",
            "open it in Excel and save it again as .xlsx, or export the sheet as CSV",
        ) from None
    names = list(book.sheet_names)
    if table.sheet is None:
        if not names:
            raise _error(
                member, entity, path, "the workbook has no sheets", "export the data again"
            )
        sheet_name = names[0]
    else:
        matches = [n for n in names if normalise_label(n) == normalise_label(table.sheet)]
        if not matches:
            raise _error(
                member,
                entity,
                path,
                f"no sheet named '{table.sheet}'; the sheets are: "
                + ", ".join(f"'{n}'" for n in names),
                f"set {_config_key(member, entity, 'sheet')} to one of them",
            )
        sheet_name = matches[0]
    try:
        try:
            sheet = book.get_sheet_by_name(sheet_name)
            rows = enumerate(sheet.iter_rows(), start=1)  # iter_rows starts at the sheet's row 1
        except BaseException as err:
            if _calamine_panic(err):
                raise ValueError("the reader stopped on a damaged part") from None
            raise
    except (CalamineError, ValueError) as err:
        raise _error(
            member,
            entity,
            path,
            f"sheet '{sheet_name}' cannot be read ({err})",
            "open it in Excel and save it again as .xlsx",
        ) from None
    start = getattr(sheet, "start", None)
    first_column = start[1] if start else 0
    from connectors.spreadsheets import workbook_parts as parts

    # The reader shows a formula's error value as an empty cell (or its stale number):
    # each format's own records say where they are.
    finder = {
        ".xlsx": parts.error_cells,
        ".xlsm": parts.error_cells,
        ".ods": parts.ods_error_cells,
        ".xlsb": parts.xlsb_error_cells,
        ".xls": parts.xls_error_cells,
    }[path.suffix.lower()]
    errors = finder(path, sheet_name)
    if errors:
        rows = _with_error_cells(rows, errors, first_column)
    header_row, headers, columns, rest = _find_header(
        member, entity, table, path, rows, first_column
    )
    return OpenedTable(
        member=member,
        entity=entity,
        path=path,
        kind="excel",
        header_row=header_row,
        headers=headers,
        columns=columns,
        sheet=sheet_name,
        first_column=first_column,
        _rows=rest,
    )


def _with_error_cells(
    rows: Iterator[tuple[int, Row]], errors: dict[int, list[tuple[int, str]]], first_column: int
) -> Iterator[tuple[int, Row]]:
    """Put each error cell's text (#DIV/0!) back where the reader left an empty cell, so
    the record reader reports it instead of taking it for a blank."""
    for number, row in rows:
        found = errors.get(number)
        if found:
            row = list(row)
            for column, text in found:
                index = column - first_column
                if 0 <= index < len(row) and not isinstance(row[index], str | bool):
                    row[index] = text  # the reader's blank, or the formula's stale number
                elif 0 <= index < len(row) and row[index] == "":
                    row[index] = text
        yield number, row


# --- header row -------------------------------------------------------------------------


def _headers(row: Row) -> list[str]:
    cells = [cell_text(c) for c in row]
    while cells and not cells[-1]:
        cells.pop()
    return cells


def _non_blank(rows: Iterator[tuple[int, Row]]) -> Iterator[tuple[int, Row]]:
    return ((n, r) for n, r in rows if not _blank(r))


def _find_header(
    member: Member,
    entity: str,
    table: SpreadsheetTable,
    path: Path,
    rows: Iterator[tuple[int, Row]],
    first_column: int = 0,
) -> tuple[int, list[str], dict[str, int], Iterator[tuple[int, Row]]]:
    """Locate the header row; return it, the field->column map and the rows after it."""
    wanted = {f: header_key(h) for f, h in table.columns.items()}
    if table.header_row is not None:
        for number, row in rows:
            if number == table.header_row:
                headers = _headers(row)
                return (
                    number,
                    headers,
                    _map_columns(member, entity, table, path, number, headers, first_column),
                    rows,
                )
        raise _error(
            member,
            entity,
            path,
            f"header_row is {table.header_row} but the file has fewer rows",
            f"correct {_config_key(member, entity, 'header_row')}, or remove it so the hub "
            "finds the header",
        )
    scanned: list[tuple[int, Row]] = []
    best: tuple[int, int, list[str]] | None = None
    for number, row in _non_blank(rows):
        headers = _headers(row)
        found = {header_key(h) for h in headers}
        hits = sum(1 for h in wanted.values() if h in found)
        if hits == len(wanted):
            return (
                number,
                headers,
                _map_columns(member, entity, table, path, number, headers, first_column),
                rows,
            )
        if hits and (best is None or hits > best[0]):
            best = (hits, number, headers)
        scanned.append((number, row))
        if len(scanned) >= HEADER_SCAN_ROWS:
            break
    if best is None:
        listing = ", ".join(f"'{h}'" for h in table.columns.values())
        raise _error(
            member,
            entity,
            path,
            f"no header row found: none of the mapped headers ({listing}) appear in the "
            f"first {HEADER_SCAN_ROWS} rows",
            f"make connector.tables.{entity}.columns in {member.config_path.name} use the "
            "file's column headers, or set header_row",
        )
    _, number, headers = best
    # raises: names the missing
    _map_columns(member, entity, table, path, number, headers, first_column)
    raise AssertionError("unreachable")  # pragma: no cover


def _map_columns(
    member: Member,
    entity: str,
    table: SpreadsheetTable,
    path: Path,
    number: int,
    headers: list[str],
    first_column: int = 0,
) -> dict[str, int]:
    """Canonical field -> column index, matching headers as people spell them.

    A header matching two columns is never settled by taking the first: 'Email' and
    ' email ' side by side may hold different addresses. The header written exactly as in
    the config wins over looser matches; otherwise the table cannot be read until the
    member renames or removes one column.
    """
    loose: dict[str, list[int]] = {}
    exact: dict[str, list[int]] = {}
    for i, header in enumerate(headers):
        if header:
            loose.setdefault(header_key(header), []).append(i)
            exact.setdefault(normalise_label(header), []).append(i)
    columns: dict[str, int] = {}
    missing: list[str] = []
    for field_name, header in table.columns.items():
        positions = loose.get(header_key(header), [])
        if len(positions) > 1:
            same = exact.get(normalise_label(header), [])
            positions = same if len(same) == 1 else positions
        if len(positions) > 1:
            where = " and ".join(
                f"'{headers[i]}' (column {column_letters(first_column + i)})" for i in positions
            )
            raise _error(
                member,
                entity,
                path,
                f"the header '{header}' (for {field_name}) matches {len(positions)} columns of "
                f"the header row (row {number}): {where}; the hub will not pick one",
                "rename or delete the extra column in the file so only one column has this "
                f"header, or write the header in connector.tables.{entity}.columns in "
                f"{member.config_path.name} exactly as the one to use is written",
            )
        if positions:
            columns[field_name] = positions[0]
        else:
            missing.append(field_name)
    if missing:
        shown = [h for h in headers if h]
        closest: dict[str, str | None] = {}
        parts = []
        for field_name in missing:
            header = table.columns[field_name]
            close = difflib.get_close_matches(
                header_key(header), [header_key(h) for h in shown], n=1, cutoff=0.5
            )
            closest[field_name] = next(
                (h for h in shown if close and header_key(h) == close[0]), None
            )
            hint = f" (closest: '{closest[field_name]}')" if closest[field_name] else ""
            parts.append(f"'{header}' (for {field_name}){hint}")
        raise MissingColumnsError(
            member.org_id,
            str(path),
            f"{entity} table: mapped column(s) missing from the header row (row {number}): "
            + "; ".join(parts)
            + ". Headers found: "
            + ", ".join(f"'{h}'" for h in shown),
            f"change connector.tables.{entity}.columns in {member.config_path.name} to the "
            "header as written in the file, or rename the column in the file",
            header_row=number,
            headers=shown,
            missing=closest,
        )
    return columns
