"""Tiny hostile files are refused before any parser expands them (issue #18, part 3).

A 1.6 KB workbook with cells at A1 and XFD1048576 made the reader allocate 512 GiB and abort
the process; a ~350-byte "billion laughs" member file hung every command. Each is generated
here and must be refused at once, with the reason, while the other members go on.
"""

from __future__ import annotations

import random
import string
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import openpyxl
import pytest
import yaml

from connectors.errors import MemberConfigError, SpreadsheetError
from connectors.members import load_member, load_members
from connectors.spreadsheets import open_table, read_entity
from tests.connectors.spreadsheet_helpers import (
    member,
    person_table,
    write_text,
    write_xls,
    write_xlsb,
)
from tests.pipelines.hub_cli import ROOT

BILLION_LAUGHS = """\
name: Laughs
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def _bomb_workbook(path: Path) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet["A1"] = "Client ID"
    sheet["XFD1048576"] = "x"
    book.save(path)
    return path


def test_an_alias_bomb_member_file_is_refused_at_once(tmp_path: Path) -> None:
    (tmp_path / "laughs.yaml").write_text(BILLION_LAUGHS, encoding="utf-8")
    started = time.monotonic()
    with pytest.raises(MemberConfigError, match="anchors and aliases") as err:
        load_member(tmp_path / "laughs.yaml")
    assert time.monotonic() - started < 2
    assert "line 2" in str(err.value)
    registry = load_members(tmp_path)
    assert list(registry.errors) == ["laughs"]


def test_hub_members_lists_the_others_beside_an_alias_bomb(tmp_path: Path) -> None:
    members = tmp_path / "members"
    members.mkdir()
    (members / "laughs.yaml").write_text(BILLION_LAUGHS, encoding="utf-8")
    (members / "plain.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "Plain",
                "connector": {
                    "kind": "spreadsheet",
                    "tables": {
                        "person": {"file": "people.csv", "columns": {"source_id": "Client ID"}}
                    },
                },
            }
        ),
        encoding="utf-8",
    )
    env = {"HUB_MEMBERS_DIR": str(members), "HUB_HOME": str(tmp_path / "hub"), "COLUMNS": "200"}
    import os

    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "members"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    output = done.stdout + done.stderr
    assert "plain" in output and "laughs" in output and "anchors and aliases" in output


def test_a_huge_member_file_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("name: Huge\n" + "# padding\n" * 200_000, encoding="utf-8")
    with pytest.raises(MemberConfigError, match="over the limit"):
        load_member(path)


@pytest.mark.parametrize(
    "body",
    [
        "name: " + "[" * 50_000 + "]" * 50_000,  # flow nesting: recursion in the composer
        "name:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 200)),  # block nesting
        "name: " + "{a: " * 20_000 + "1" + "}" * 20_000,
    ],
    ids=["flow-lists", "block-mappings", "flow-mappings"],
)
def test_a_deeply_nested_member_file_is_refused_not_a_crash(tmp_path: Path, body: str) -> None:
    """100 KB of nested '[' made PyYAML recurse past Python's limit: `hub members` crashed
    with a RecursionError for every member, not only the one with the file."""
    (tmp_path / "deep.yaml").write_text(body + "\n", encoding="utf-8")
    with pytest.raises(MemberConfigError, match="nests deeper than 32 levels") as err:
        load_member(tmp_path / "deep.yaml")
    assert "line " in str(err.value)
    assert list(load_members(tmp_path).errors) == ["deep"]


def test_thousands_of_problems_do_not_flood_the_message(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text("name: x\n" + "".join(f"k{i}: {i}\n" for i in range(5_000)), "utf-8")
    with pytest.raises(MemberConfigError) as err:
        load_member(path)
    assert len(err.value.problems) > 5_000  # every problem kept for callers
    message = str(err.value)
    assert "k24'" not in message and "more (fix these, then run `hub check` again)" in message
    assert len(message) < 5_000


def test_a_member_file_that_is_a_pipe_or_a_device_is_refused(tmp_path: Path) -> None:
    """A FIFO would block `hub members` for ever; a link to /dev/zero would fill memory."""
    import os

    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    for name in ("pipe", "zero"):
        with pytest.raises(MemberConfigError, match="not a regular file"):
            load_member(tmp_path / f"{name}.yaml")
    assert sorted(load_members(tmp_path).errors) == ["pipe", "zero"]


def test_a_workbook_with_a_far_cell_is_refused_before_reading(tmp_path: Path) -> None:
    path = _bomb_workbook(tmp_path / "bomb.xlsx")
    assert path.stat().st_size < 10_000
    m = member(
        tmp_path,
        {"person": person_table(path, {"source_id": "Client ID"})},
        sharing={"consent": "none"},
    )
    started = time.monotonic()
    with pytest.raises(SpreadsheetError) as err:
        open_table(m, "person")
    assert time.monotonic() - started < 5
    assert "XFD" not in err.value.problem  # says it in numbers
    assert "column 16,384" in err.value.problem and "HUB_MAX_CELLS" in err.value.problem


ODS_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
)


def _ods(path: Path, rows: str) -> Path:
    """An ODS workbook whose one sheet holds ``rows`` (table:table-row elements)."""
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ODS_NS} '
        'office:version="1.2"><office:body><office:spreadsheet>'
        f'<table:table table:name="People"><table:table-column/>{rows}</table:table>'
        "</office:spreadsheet></office:body></office:document-content>"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("content.xml", content)
        z.writestr(
            "META-INF/manifest.xml",
            '<?xml version="1.0"?><manifest:manifest xmlns:manifest='
            '"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"><manifest:file-entry '
            'manifest:full-path="/" manifest:media-type='
            '"application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry '
            'manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
            "</manifest:manifest>",
        )
    return path


def _text_cell(value: str) -> str:
    return (
        f'<table:table-cell office:value-type="string"><text:p>{value}</text:p></table:table-cell>'
    )


def test_an_ods_bomb_is_refused_and_a_libreoffice_file_is_read(tmp_path: Path) -> None:
    """One value after 15,999 repeated empty cells in 6,000 repeated rows: a 1.5 KB file the
    reader expanded to 96 million cells (over 3 GB). LibreOffice's own files end every row
    and the sheet with repeated empty cells and rows; those must still be read."""
    bomb = _ods(
        tmp_path / "bomb.ods",
        f"<table:table-row>{_text_cell('Client ID')}</table:table-row>"
        '<table:table-row table:number-rows-repeated="6000">'
        '<table:table-cell table:number-columns-repeated="15999"/>'
        f"{_text_cell('x')}</table:table-row>",
    )
    assert bomb.stat().st_size < 2_000
    m = member(
        tmp_path,
        {"person": person_table(bomb, {"source_id": "Client ID"})},
        sharing={"consent": "none"},
    )
    started = time.monotonic()
    refused = r"worksheet People has a value at .*: 96,016,000 cells"
    with pytest.raises(SpreadsheetError, match=refused) as err:
        open_table(m, "person")
    assert time.monotonic() - started < 5 and "HUB_MAX_CELLS" in err.value.problem
    trailing = '<table:table-cell table:number-columns-repeated="1023"/>'
    normal = _ods(
        tmp_path / "people.ods",
        f"<table:table-row>{_text_cell('Client ID')}{trailing}</table:table-row>"
        + "".join(
            f"<table:table-row>{_text_cell(f'C{i}')}{trailing}</table:table-row>" for i in range(3)
        )
        + '<table:table-row table:number-rows-repeated="1048572">'
        '<table:table-cell table:number-columns-repeated="1024"/></table:table-row>',
    )
    m = member(
        tmp_path,
        {"person": person_table(normal, {"source_id": "Client ID"})},
        sharing={"consent": "none"},
    )
    ids = [i for batch in read_entity(m, "person") for i in batch.columns["source_id"]]
    assert ids == ["C0", "C1", "C2"]


def test_a_workbook_whose_cells_leave_out_their_place_is_measured_too(tmp_path: Path) -> None:
    """A cell's r attribute is optional: readers place it after the one before. 15,000
    unplaced cells in row 4,000 is a 60-million-cell sheet the check did not see."""
    path = tmp_path / "unplaced.xlsx"
    real = _bomb_workbook(tmp_path / "base.xlsx")
    sheet = (
        '<?xml version="1.0" encoding="UTF-8"?><worksheet '
        'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        '<row r="1"><c t="inlineStr"><is><t>Client ID</t></is></c></row>'
        '<row r="4000">' + "<c/>" * 15_000 + '<c t="inlineStr"><is><t>x</t></is></c></row>'
        "</sheetData></worksheet>"
    )
    with zipfile.ZipFile(real) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            data = (
                sheet.encode() if item.filename == "xl/worksheets/sheet1.xml" else source.read(item)
            )
            out.writestr(item, data)
    m = member(
        tmp_path,
        {"person": person_table(path, {"source_id": "Client ID"})},
        sharing={"consent": "none"},
    )
    with pytest.raises(SpreadsheetError, match=r"has a cell at row 4,000, column .*HUB_MAX_CELLS"):
        open_table(m, "person")


def test_a_zip_bomb_workbook_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ratio.xlsx"
    real = _bomb_workbook(tmp_path / "base.xlsx")
    with zipfile.ZipFile(real) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for item in source.infolist():
            out.writestr(item, source.read(item))
        out.writestr("xl/media/padding.bin", b"\0" * (30 << 20))
    assert path.stat().st_size < 200_000
    m = member(
        tmp_path,
        {"person": person_table(path, {"source_id": "Client ID"})},
        sharing={"consent": "none"},
    )
    with pytest.raises(SpreadsheetError, match="zip bomb"):
        open_table(m, "person")


def test_limits_are_configurable_and_a_huge_csv_field_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_text(tmp_path / "people.csv", ["Client ID,Notes", "1," + "x" * 5000, "2,ok"])
    m = member(
        tmp_path,
        {"person": person_table(path, {"source_id": "Client ID"})},
        sharing={"consent": "none"},
    )
    assert len(list(read_entity(m, "person"))) >= 1  # within the default limits
    monkeypatch.setenv("HUB_MAX_FIELD_CHARS", "1000")
    with pytest.raises(SpreadsheetError, match="broken CSV"):
        list(read_entity(m, "person"))
    # A line of a million empty fields is no row either: refused before it is split.
    many = write_text(tmp_path / "wide.csv", ["Client ID,Notes", "1," + "," * 5000, "2,ok"])
    wide = member(
        tmp_path,
        {"person": person_table(many, {"source_id": "Client ID"})},
        sharing={"consent": "none"},
    )
    with pytest.raises(SpreadsheetError, match="a line of over 1,000 characters"):
        list(read_entity(wide, "person"))
    monkeypatch.setenv("HUB_MAX_FILE_BYTES", "100")
    with pytest.raises(SpreadsheetError, match="HUB_MAX_FILE_BYTES"):
        open_table(m, "person")
    monkeypatch.setenv("HUB_MAX_FILE_BYTES", "many")
    with pytest.raises(ValueError, match="HUB_MAX_FILE_BYTES must be a whole number"):
        open_table(m, "person")


@pytest.mark.slow
def test_hub_run_goes_on_past_a_workbook_bomb(tmp_path: Path) -> None:
    """The bomb member fails with the reason; the others load and a release is written."""
    from tests.pipelines.hub_cli import hub, hub_env
    from tests.pipelines.test_hub_run import _write_network

    members = _write_network(tmp_path)
    (tmp_path / "data" / "gamma").mkdir()
    _bomb_workbook(tmp_path / "data" / "gamma" / "gamma.xlsx")
    (members / "gamma.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "Gamma",
                "connector": {
                    "kind": "spreadsheet",
                    "tables": {
                        "person": {
                            "file": "../data/gamma/gamma.xlsx",
                            "columns": {"source_id": "Client ID"},
                        }
                    },
                },
                "sharing": {"consent": "none"},
            }
        ),
        encoding="utf-8",
    )
    done = hub(["run"], hub_env(tmp_path, members))
    output = done.stdout + done.stderr
    assert done.returncode == 1, output  # a release, with a member that failed
    assert "✗ load gamma" in output and "HUB_MAX_CELLS" in output
    assert "✓ load alpha" in output and "✓ load beta" in output
    assert (tmp_path / "hub" / "releases" / "LATEST").exists()


# --- binary workbooks: .xlsb and .xls ------------------------------------------------------

XFD1048576 = (1_048_575, 16_383)  # 0-based, as the binary formats store them


def _refused(tmp_path: Path, path: Path, match: str) -> str:
    """Open ``path`` as a member's person table; it must be refused at once with ``match``."""
    m = member(
        tmp_path,
        {"person": person_table(path, {"source_id": "Client ID"})},
        sharing={"consent": "none"},
    )
    started = time.monotonic()
    with pytest.raises(SpreadsheetError, match=match) as err:
        open_table(m, "person")
    assert time.monotonic() - started < 5
    return err.value.problem


def _ids(tmp_path: Path, path: Path) -> list[str]:
    m = member(
        tmp_path,
        {"person": person_table(path, {"source_id": "Client ID"})},
        sharing={"consent": "none"},
    )
    return [i for batch in read_entity(m, "person") for i in batch.columns["source_id"]]


PEOPLE = [(0, 0, "Client ID"), (0, 1, "Age"), (1, 0, "C1"), (1, 1, 31.0), (2, 0, "C2")]


def test_an_xlsb_with_a_far_cell_is_refused_and_a_normal_one_is_read(tmp_path: Path) -> None:
    """Two cells at A1 and XFD1048576 in a 1.3 KB .xlsb: the reader would allocate 512 GiB
    and abort the process. Refused for its declared dimension, and, when the dimension
    lies, for the cell itself."""
    bomb = write_xlsb(tmp_path / "bomb.xlsb", [(0, 0, "Client ID"), (*XFD1048576, "x")])
    assert bomb.stat().st_size < 2_000
    problem = _refused(tmp_path, bomb, r"worksheet People declares row 1,048,576, column 16,384")
    assert "17,179,869,184 cells" in problem and "HUB_MAX_CELLS" in problem
    assert "XFD" not in problem and "'x'" not in problem  # numbers, never cell values
    liar = write_xlsb(
        tmp_path / "liar.xlsb", [(0, 0, "Client ID"), (*XFD1048576, "x")], dimension=(0, 0)
    )
    _refused(tmp_path, liar, r"worksheet People has a cell at row 1,048,576, column 16,384")
    assert _ids(tmp_path, write_xlsb(tmp_path / "people.xlsb", PEOPLE)) == ["C1", "C2"]


def test_an_xlsb_with_a_wide_row_far_down_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limit is on rows times columns: a modest row far down counts too."""
    monkeypatch.setenv("HUB_MAX_CELLS", "100000")
    path = write_xlsb(
        tmp_path / "far.xlsb", [(0, 0, "Client ID"), (9_999, 20, 1.0)], dimension=(2, 2)
    )
    _refused(tmp_path, path, r"has a cell at row 10,000, column 21: 210,000 cells")
    # Records longer than the chunks the part is read in are read past, not held.
    text = "".join(random.Random(18).choices(string.ascii_letters, k=1_800_001))
    long = [(1, 0, text[:1_500_000]), (2, 0, text[1_500_000:]), (3, 1, 2.0)]  # no zip bomb
    path = write_xlsb(
        tmp_path / "long.xlsb", [(0, 0, "Client ID"), *long, (9_999, 20, 1.0)], dimension=(2, 2)
    )
    _refused(tmp_path, path, r"has a cell at row 10,000, column 21: 210,000 cells")


def _set_dimensions(path: Path, rows: int, cols: int) -> None:
    """Make every sheet's DIMENSIONS record (BIFF8: 14 bytes) declare ``rows`` x ``cols``,
    in place: the record lies inside the workbook stream, so the file stays valid."""
    data = bytearray(path.read_bytes())
    at = data.find(b"\x00\x02\x0e\x00")
    assert at != -1
    while at != -1:
        struct.pack_into("<IIHHH", data, at + 4, 0, rows, 0, cols, 0)
        at = data.find(b"\x00\x02\x0e\x00", at + 4)
    path.write_bytes(bytes(data))


def test_an_xls_with_far_cells_is_refused_and_a_normal_one_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An .xls with cells at A1 and IV65536 costs the reader 16.7 million cells: over a
    lowered limit it is refused, for its DIMENSIONS record and, when that lies, for the
    cell itself."""
    monkeypatch.setenv("HUB_MAX_CELLS", "1000000")
    bomb = write_xls(tmp_path / "bomb.xls", {"People": [(0, 0, "Client ID"), (65_535, 255, "x")]})
    assert bomb.stat().st_size < 10_000
    problem = _refused(tmp_path, bomb, r"worksheet People declares row 65,536, column 256")
    assert "16,777,216 cells" in problem and "HUB_MAX_CELLS" in problem
    _set_dimensions(bomb, 1, 1)
    _refused(tmp_path, bomb, r"worksheet People has a cell at row 65,536, column 256")
    people = write_xls(tmp_path / "people.xls", {"People": PEOPLE, "Notes": [(0, 0, "n")]})
    assert _ids(tmp_path, people) == ["C1", "C2"]


def test_an_xls_whose_sheets_together_are_too_big_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader reads every sheet of an .xls when it opens it, so the sheets' extents are
    held to the limit together, not only one by one."""
    monkeypatch.setenv("HUB_MAX_CELLS", "30000")
    sheet = [(0, 0, "Client ID"), (199, 99, 1.0)]  # 20,000 cells each
    path = write_xls(tmp_path / "three.xls", {"People": sheet, "More": sheet, "Most": sheet})
    _refused(tmp_path, path, r"sheets together span 40,000 cells .*HUB_MAX_CELLS")


def _boundsheet_at(path: Path, offset: int) -> None:
    """Point the first sheet's BOUNDSHEET record at ``offset`` of the workbook stream."""
    data = bytearray(path.read_bytes())
    at = data.find(b"\x85\x00")
    while struct.unpack_from("<H", data, at + 2)[0] not in range(8, 40):
        at = data.find(b"\x85\x00", at + 1)
    struct.pack_into("<I", data, at + 4, offset)
    path.write_bytes(bytes(data))


def test_an_xls_whose_sheet_starts_past_its_end_is_refused(tmp_path: Path) -> None:
    """The reader panics on such a sheet (an exception no `except Exception` catches)."""
    path = write_xls(tmp_path / "past.xls", {"People": PEOPLE})
    _boundsheet_at(path, 10_000_000)
    _refused(tmp_path, path, r"worksheet People starts at byte 10,000,000 .* damaged")


def test_an_xls_whose_workbook_stream_claims_more_than_the_file_is_refused(
    tmp_path: Path,
) -> None:
    """The reader follows the stream's sectors until it has as many bytes as claimed: a
    loop in the sector chain with a huge claim would fill memory."""
    path = write_xls(tmp_path / "claim.xls", {"People": PEOPLE})
    data = bytearray(path.read_bytes())
    at = data.find("Workbook".encode("utf-16-le"))
    struct.pack_into("<I", data, at + 120, 0x7FFFFFFF)  # the directory entry's stream size
    path.write_bytes(bytes(data))
    _refused(tmp_path, path, r"workbook's data claims 2,147,483,647 bytes in a file of")


@pytest.mark.parametrize("suffix", [".xls", ".xlsb"])
def test_a_broken_binary_workbook_gets_the_readers_error(tmp_path: Path, suffix: str) -> None:
    """Garbage, and a real workbook cut short: the check leaves them to the reader, whose
    error the member sees; nothing crashes."""
    real = tmp_path / f"real{suffix}"
    if suffix == ".xls":
        write_xls(real, {"People": PEOPLE})
    else:
        write_xlsb(real, PEOPLE)
    whole = real.read_bytes()
    for name, body in [("garbage", bytes(range(256)) * 8), ("cut", whole[: len(whole) // 2])]:
        path = tmp_path / f"{name}{suffix}"
        path.write_bytes(body)
        _refused(tmp_path, path, "not a readable spreadsheet workbook")


def test_a_workbook_that_makes_the_reader_panic_is_refused_not_a_crash(tmp_path: Path) -> None:
    """calamine answers some damaged parts (here a sheet id whose stated length runs past
    its record) with a Rust panic, which Python raises as a BaseException that ``except
    Exception`` lets through, stopping `hub run`. It is the member's unreadable file."""
    path = write_xlsb(tmp_path / "panics.xlsb", PEOPLE)
    with zipfile.ZipFile(path) as z:
        parts = {name: z.read(name) for name in z.namelist()}
    book = bytearray(parts["xl/workbook.bin"])
    assert book[17] == 4  # the length, in characters, of the sheet's relationship id "rId1"
    book[17] = 228
    parts["xl/workbook.bin"] = bytes(book)
    with zipfile.ZipFile(path, "w") as z:
        for name, data in parts.items():
            z.writestr(name, data)
    from python_calamine import CalamineWorkbook

    try:  # the premise: this calamine panics on the file (a later one may just refuse it)
        CalamineWorkbook.from_path(str(path))
        panics = False
    except BaseException as err:
        panics = type(err).__name__ == "PanicException"
    problem = _refused(tmp_path, path, "not a readable spreadsheet workbook")
    assert "damaged" in problem or not panics


def test_a_workbook_packed_in_a_way_python_cannot_unpack_is_refused(tmp_path: Path) -> None:
    """Deflate64 (method 9): Python cannot unpack it to measure the sheets, the reader's zip
    library may; what cannot be measured is not read (before, the check crashed)."""
    path = write_xlsb(tmp_path / "deflate64.xlsb", PEOPLE)
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x01\x02", 10), (b"PK\x03\x04", 8)):
        at = data.find(signature)
        while at != -1:
            struct.pack_into("<H", data, at + offset, 9)
            at = data.find(signature, at + 4)
    path.write_bytes(bytes(data))
    _refused(tmp_path, path, r"the hub cannot unpack the workbook to check it .*save it again")


def test_a_bomb_with_a_wrong_checksum_is_refused(tmp_path: Path) -> None:
    """The reader stops at the end of the sheet data, before the end of the part where the
    checksum is checked: a bomb with a wrong checksum would go off. Python checks it when
    the whole part is read, so the check refuses the part it cannot measure."""
    path = write_xlsb(
        tmp_path / "crc.xlsb", [(0, 0, "Client ID"), (*XFD1048576, "x")], dimension=(0, 0)
    )
    data = bytearray(path.read_bytes())
    part = b"xl/worksheets/sheet1.bin"
    for signature, name_at, crc_at in ((b"PK\x01\x02", 46, 16), (b"PK\x03\x04", 30, 14)):
        at = data.find(signature)
        while at != -1:
            if data[at + name_at : at + name_at + len(part)] == part:
                data[at + crc_at] ^= 0xFF
            at = data.find(signature, at + 4)
    path.write_bytes(bytes(data))
    _refused(tmp_path, path, r"cannot unpack the workbook to check it \(Bad CRC-32")
