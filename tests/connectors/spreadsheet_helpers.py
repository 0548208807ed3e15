"""Helpers for the spreadsheet connector tests: write real files and real member YAML."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import Any

import yaml

from connectors.members import Member, load_member
from connectors.spreadsheets import Issue

PERSON_COLUMNS = {
    "source_id": "Client ID",
    "given_name": "First name",
    "family_name": "Surname",
    "birth_date": "DOB",
    "phone": "Phone",
    "postcode": "Postcode",
    "consent_to_share": "Consent",
}


def write_text(
    path: Path, lines: list[str], encoding: str = "utf-8", newline: str = "\r\n"
) -> Path:
    """Write lines exactly as a spreadsheet program would (CRLF by default)."""
    path.write_bytes((newline.join(lines) + newline).encode(encoding))
    return path


def member(
    tmp_path: Path, tables: dict[str, dict[str, Any]], org_id: str = "acme_trust", **extra: Any
) -> Member:
    """Write members/<org_id>.yaml next to the data files and load it through the validator."""
    folder = tmp_path / "members"
    folder.mkdir(exist_ok=True)
    config: dict[str, Any] = {
        "name": "Acme Trust",
        "connector": {"kind": "spreadsheet", "tables": tables},
    }
    for key, value in extra.items():
        if key in ("date_order", "phone_region", "decimal_separator", "null_values"):
            config["connector"][key] = value
        else:
            config[key] = value
    for table in tables.values():
        _into_member_folder(tmp_path, org_id, table)
    path = folder / f"{org_id}.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return load_member(path)


def _into_member_folder(tmp_path: Path, org_id: str, table: dict[str, Any]) -> None:
    """A member reads only files in a folder named after it (connectors.scope): move a file
    written at ``tmp_path`` into ``tmp_path/<org_id>/`` and point the table there. The old
    path becomes a link to it, so a test that rewrites the file still changes what is read."""
    file = Path(table["file"])
    if not file.is_absolute() or file.parent != tmp_path:
        return
    target = tmp_path / org_id / file.name
    target.parent.mkdir(exist_ok=True)
    if file.exists() and not file.is_symlink():
        file.replace(target)
    if not file.exists() and not file.is_symlink():
        file.symlink_to(target)
    table["file"] = str(target)


def person_table(
    file: Path, columns: dict[str, str] | None = None, **options: Any
) -> dict[str, Any]:
    """A person table entry pointing at ``file`` (absolute, so the YAML can live anywhere)."""
    return {"file": str(file), "columns": columns or PERSON_COLUMNS, **options}


def _brt(typ: int, body: bytes = b"") -> bytes:
    """One BIFF12 record: type in 1-2 bytes and size in 1-4, 7 bits each ([MS-XLSB] 2.1.4)."""
    head = bytearray([typ] if typ < 0x80 else [(typ & 0x7F) | 0x80, typ >> 7])
    size = len(body)
    while True:
        size, low = size >> 7, size & 0x7F
        head.append(low | 0x80 if size else low)
        if not size:
            return bytes(head) + body


def _wide(text: str) -> bytes:
    return struct.pack("<I", len(text)) + text.encode("utf-16-le")


class XlsbError(int):
    """An error cell for ``write_xlsb``: its BErr code (0x07 is #DIV/0!)."""

    @property
    def code(self) -> int:
        return int(self)


def _xlsb_sheet(cells: list[tuple[int, int, str | float]], dimension: tuple[int, int]) -> bytes:
    """A worksheet part: BrtBeginSheet, BrtWsDim, the rows and cells, BrtEndSheet."""
    rows: dict[int, list[tuple[int, str | float]]] = {}
    for row, col, value in cells:
        rows.setdefault(row, []).append((col, value))
    out = bytearray(_brt(0x81))
    out += _brt(0x94, struct.pack("<IIII", 0, dimension[0], 0, dimension[1]))
    out += _brt(0x91)  # BrtBeginSheetData
    for row in sorted(rows):
        out += _brt(0x00, struct.pack("<IIHBBBI", row, 0, 300, 0, 0, 0, 0))  # BrtRowHdr
        for col, value in rows[row]:
            cell = struct.pack("<II", col, 0)  # column, style
            if isinstance(value, XlsbError):
                out += _brt(0x03, cell + bytes([value.code]))  # BrtCellError
            elif isinstance(value, str):
                out += _brt(0x06, cell + _wide(value))  # BrtCellSt
            else:
                out += _brt(0x05, cell + struct.pack("<d", value))  # BrtCellReal
    return bytes(out + _brt(0x92) + _brt(0x82))


_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?><Relationships '
    'xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/{}" Target="{}"/>'
    "</Relationships>"
)


def write_xlsb(
    path: Path,
    cells: list[tuple[int, int, str | float]],
    sheet: str = "People",
    dimension: tuple[int, int] | None = None,
) -> Path:
    """A minimal real .xlsb (as Excel's binary workbook, without styles) with ``cells`` as
    (0-based row, 0-based column, value); ``dimension`` is the last (row, column) the
    sheet declares, by default the true one."""
    last = dimension or (max(c[0] for c in cells), max(c[1] for c in cells))
    book = _brt(0x83) + _brt(0x8F)  # BrtBeginBook, BrtBeginBundleShs
    book += _brt(0x9C, struct.pack("<II", 0, 1) + _wide("rId1") + _wide(sheet))  # BrtBundleSh
    book += _brt(0x90) + _brt(0x84)  # BrtEndBundleShs, BrtEndBook
    types = (
        '<?xml version="1.0" encoding="UTF-8"?><Types '
        'xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="bin" '
        'ContentType="application/vnd.ms-excel.sheet.binary.macroEnabled.main"/>'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.bin" '
        'ContentType="application/vnd.ms-excel.worksheet"/></Types>'
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", types)
        z.writestr(
            "_rels/.rels",
            _RELS.format("officeDocument/2006/relationships/officeDocument", "xl/workbook.bin"),
        )
        z.writestr("xl/workbook.bin", book)
        z.writestr(
            "xl/_rels/workbook.bin.rels",
            _RELS.format("officeDocument/2006/relationships/worksheet", "worksheets/sheet1.bin"),
        )
        z.writestr("xl/worksheets/sheet1.bin", _xlsb_sheet(cells, last))
    return path


def write_xls(path: Path, sheets: dict[str, list[tuple[int, int, str | float]]]) -> Path:
    """A real BIFF8 .xls written by xlwt, one sheet per entry of (row, column, value)."""
    import xlwt

    book = xlwt.Workbook()
    for name, cells in sheets.items():
        sheet = book.add_sheet(name)
        for row, col, value in cells:
            sheet.write(row, col, value)
    book.save(str(path))
    return path


def read_rows(m: Member, entity: str = "person") -> tuple[list[dict[str, Any]], list[Issue]]:
    """Every row the reader makes of the member's table (as dicts), and its issues."""
    from connectors.spreadsheets import read_entity

    rows: list[dict[str, Any]] = []
    issues: list[Issue] = []
    for batch in read_entity(m, entity):
        names = list(batch.columns)
        rows += [
            dict(zip(names, values, strict=True))
            for values in zip(*batch.columns.values(), strict=True)
        ]
        issues += batch.issues
    return rows, issues
