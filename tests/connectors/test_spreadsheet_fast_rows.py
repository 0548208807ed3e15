"""The column-wise reading (fast_rows) gives exactly what the per-row reader gives.

The reference is ``EntityReader._row`` applied to every row, the reader as it was before the
column-wise path existed; the fast path must agree with it on good rows, quarantine rows
(reasons, order), consent counts and derived ids, for random and adversarial cells.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors import values as v
from connectors.members import Member
from connectors.spreadsheets import open_table
from connectors.spreadsheets.fast_rows import ACCEPT
from connectors.spreadsheets.records import EntityReader
from tests.connectors.spreadsheet_helpers import member, write_text

NULLS = ["n/a", "-", "unknown"]
# Per column: (clean cells, odd cells). Clean cells are most of every column, so most rows
# take the column-wise path; odd cells send their row the per-row way or test its edges.
POOLS: dict[str, tuple[list[str], list[str]]] = {
    "Notes": (["x", "9", "note"], ["", "Total", " Grand total", "subtotal", "\u00a0Total"]),
    "Client ID": (
        [*(f"P{i}" for i in range(40)), "0042", "e1", "N1"],
        [
            "",
            " ",
            "n/a",
            "N/A",
            "#N/A",
            "Err:502",
            "1.23E+11",
            " P3 ",
            "Total",
            "Client ID",
            "P\u200b4",
            "\uff305",
            "unknown",
        ],
    ),
    "First name": (["Zoë", "Zoe\u0308", "Eve", "  Mary  Ann ", ""], ["n/a", "#REF!", "UNKNOWN"]),
    "Surname": (["Smith", "O'Brien", "Évans", ""], ["-", "S\u200dmith", "Total"]),
    "DOB": (
        ["01/02/1990", "1990-02-01", "1 Feb 1990", "", "5/6/2001"],
        ["31/02/1990", "13/13/2000", "01/02/90", "01/02/2090", "1899-12-31", "44000", "#VALUE!"],
    ),
    "Phone": (["07700 900123", "+44 7700 900123", "", "0044 7700 900124"], ["7700900123", "1"]),
    "Postcode": (["M14 5AB", "m145ab", " M1 1AA ", "", "M1 1AA\u200b"], ["XYZ", "n/a"]),
    "Email": (
        [
            "a@example.org",
            "A@Example.org",
            "x.y+z@mail.example.co.uk",
            " a@example.org",
            "",
            "zoë.1@example.org",
            "siân@example.org",
            "ß@example.org",
        ],
        [
            "mailto:a@example.org",
            "a..b@example.org",
            "bad",
            "é@example.org",
            "a@b.c",
            "N/A",
            "ZOË@example.org",
            "zoe\u0308@example.org",
            "a@exämple.org",
        ],
    ),
    "Consent": (["Yes", "No", "yes", "", "Y"], ["maybe", "n/a"]),
}
PERSON_HEADERS = list(POOLS)
PERSON_COLUMNS = {
    "source_id": "Client ID",
    "given_name": "First name",
    "family_name": "Surname",
    "birth_date": "DOB",
    "phone": "Phone",
    "postcode": "Postcode",
    "email": "Email",
    "consent_to_share": "Consent",
}
SESSION_POOLS: dict[str, tuple[list[str], list[str]]] = {
    "Client": (["1", "2", "3", "04"], ["", "n/a", "Total", "#N/A"]),
    "Date": (
        ["2025-01-02", "02/01/2025", "13/01/2025", "3 Jan 2025"],
        ["2025-02-30", "", "Client"],
    ),
    "Hours": (["1", "1,5", "2.5", ""], ["1,234", "lots", "1.234,5"]),
    "Unit": (["hours", "", "Hours "], ["-"]),
}
SESSION_COLUMNS = {
    "person_source_id": "Client",
    "delivered_on": "Date",
    "quantity": "Hours",
    "unit": "Unit",
}


ALPHABET = 'aZ09 #/:-.,@\u00a0\u200bé\n"\ufeff\r'
# Lines a CSV writer never writes but members' files have: stray quotes (one left open
# swallows the lines after it), a quote mid-cell, a short row, a DOS end-of-file mark.
RAW_LINES = [
    'x,P90,"Eve,Smith,01/02/1990,,M1 1AA,a@example.org,Yes',
    'x,P91,Ev"e,Smith,01/02/1990,,M1 1AA,b@example.org,Yes',
    'x,"P92"x,Eve,Smith,01/02/1990,,M1 1AA,c@example.org,Yes',
    "x,P93,Eve",
    "\x1a",
]


def _rows(rnd: random.Random, pools: dict[str, tuple[list[str], list[str]]]) -> list[list[str]]:
    """Rows of mostly clean cells (so most rows go column-wise), some odd cells, a little
    random text, a few short rows and repeated header rows."""

    def cell(clean: list[str], odd: list[str]) -> str:
        pick = rnd.random()
        if pick < 0.04:
            return "".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(0, 6)))
        return rnd.choice(odd if pick < 0.1 else clean)

    rows = []
    for _ in range(rnd.randint(1, 40)):
        row = [cell(*pool) for pool in pools.values()]
        pick = rnd.random()
        if pick < 0.04:
            row = row[: rnd.randint(0, len(row) - 1)]
        elif pick < 0.07:
            row = list(pools)
        rows.append(row)
    return rows


def _write(
    path: Path, headers: list[str], rows: list[list[str]], rnd: random.Random | None = None
) -> None:
    """The rows as a CSV file; with ``rnd``, as files come: CRLF or LF, every cell quoted
    or only where needed, empty lines, stray quotes, UTF-8 with or without a BOM, cp1252."""
    out = io.StringIO()
    end = rnd.choice(["\r\n", "\n"]) if rnd else "\r\n"
    quoting = rnd.choice([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]) if rnd else csv.QUOTE_MINIMAL
    writer = csv.writer(out, quoting=quoting, lineterminator=end)
    writer.writerow(headers)
    for row in rows:
        pick = rnd.random() if rnd else 1.0
        if pick < 0.03:
            out.write(end)
        elif pick < 0.06:
            out.write(rnd.choice(RAW_LINES) + end)  # type: ignore[union-attr]
        writer.writerow(row)
    text = out.getvalue()
    encoding = "utf-8"
    pick = rnd.random() if rnd else 1.0
    if pick < 0.2:
        encoding = "utf-8-sig"
    elif pick < 0.4:
        try:
            text.encode("cp1252")
            encoding = "cp1252"
        except UnicodeEncodeError:
            pass
    path.write_bytes(text.encode(encoding))


def _exact(m: Member, entity: str) -> tuple[dict[str, list[Any]], list[Any], dict[str, int]]:
    """The per-row reader: ``_row`` on every row, in one batch."""
    with open_table(m, entity) as opened:
        reader = EntityReader(m, entity, opened)
        columns = reader._empty()
        reader._targets = reader._bind(columns)
        issues: list[Any] = []
        for number, cells in opened.rows():
            reader._row(number, cells, issues)
        return columns, issues, dict(reader.consent_counts)


def _fast(
    m: Member, entity: str, chunk_rows: int
) -> tuple[dict[str, list[Any]], list[Any], dict[str, int]]:
    """The column-wise reader, small chunks so runs and slow rows cross chunk edges."""
    with open_table(m, entity) as opened:
        reader = EntityReader(m, entity, opened, chunk_rows=chunk_rows)
        columns = reader._empty()
        issues: list[Any] = []
        for batch in reader.batches():
            for name, values in batch.columns.items():
                columns[name].extend(values)
            issues.extend(batch.issues)
        return columns, issues, dict(reader.consent_counts)


def _people(tmp_path: Path, consent: str) -> Member:
    path = tmp_path / "people.csv"
    _write(path, PERSON_HEADERS, [])
    return member(
        tmp_path,
        {"person": {"file": str(path), "columns": PERSON_COLUMNS}},
        date_order="day_first",
        null_values=NULLS,
        sharing={"consent": consent},
    )


@pytest.mark.parametrize("consent", ["per_record", "all"])
def test_people_read_column_wise_match_the_per_row_reader(tmp_path: Path, consent: str) -> None:
    m = _people(tmp_path, consent)
    path = m.connector.tables["person"].file

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(rnd=st.randoms(use_true_random=False), chunk_rows=st.integers(1, 7))
    def check(rnd: random.Random, chunk_rows: int) -> None:
        _write(Path(path), PERSON_HEADERS, _rows(rnd, POOLS), rnd)
        assert _fast(m, "person", chunk_rows) == _exact(m, "person")

    check()


def test_sessions_with_derived_ids_defaults_and_numbers_match(tmp_path: Path) -> None:
    path = tmp_path / "sessions.csv"
    _write(path, list(SESSION_POOLS), [])
    people = write_text(tmp_path / "people.csv", ["Client ID", "1"])
    m = member(
        tmp_path,
        {
            "person": {"file": str(people), "columns": {"source_id": "Client ID"}},
            "service_delivery": {
                "file": str(path),
                "columns": SESSION_COLUMNS,
                "defaults": {"programme": "Food Bank", "unit": "sessions"},
            },
        },
        null_values=NULLS,
        mappings={"programmes": {"Food Bank": "food_security"}},
        sharing={"consent": "none"},
    )
    file = m.connector.tables["service_delivery"].file

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    @given(rnd=st.randoms(use_true_random=False), chunk_rows=st.integers(1, 7))
    def check(rnd: random.Random, chunk_rows: int) -> None:
        _write(Path(file), list(SESSION_POOLS), _rows(rnd, SESSION_POOLS), rnd)
        assert _fast(m, "service_delivery", chunk_rows) == _exact(m, "service_delivery")

    check()


def test_clean_rows_skip_the_per_row_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The speed itself: clean rows are taken column-wise, only the bad row goes one by one."""
    m = _people(tmp_path, "per_record")
    rows = [
        [
            "",
            f"P{i}",
            "Zoë",
            "Smith",
            f"{i % 28 + 1:02d}/03/1990",
            "07700 900123",
            "M14 5AB",
            f"p{i}@example.org",
            "Yes",
        ]
        for i in range(1, 300)
    ]
    for row in rows:
        row[0] = "note"
    rows[150][4] = "31/02/1990"  # rejected: the one row read one by one
    _write(Path(m.connector.tables["person"].file), PERSON_HEADERS, rows)
    seen: list[int] = []
    original = EntityReader._row

    def counted(self: EntityReader, number: int, cells: Any, issues: list[Any]) -> None:
        seen.append(number)
        original(self, number, cells, issues)

    monkeypatch.setattr(EntityReader, "_row", counted)
    columns, issues, counts = _fast(m, "person", 100)
    assert seen == [152]  # file row of rows[150] (the header is row 1)
    assert [i.code for i in issues] == ["invalid_date"]
    assert len(columns["source_id"]) == 298
    assert columns["phone"][0] == "+447700900123" and columns["postcode"][0] == "M14 5AB"
    assert counts == {"yes": 298}


def test_edge_rows_match_the_per_row_reader(tmp_path: Path) -> None:
    """Rows a random draw rarely makes: null words in the id column, all-blank rows, a
    totals row whose label is in the second column, blank cells in every column."""
    m = _people(tmp_path, "all")
    clean = ["x", "P1", "Eve", "Smith", "01/02/1990", "", "M1 1AA", "a@example.org", "Yes"]
    rows = [
        clean,
        ["x", "unknown", *clean[2:]],
        ["x", "UNKNOWN", *clean[2:]],
        ["x", "-", *clean[2:]],
        ["x", "P2", "n/a", "-", "", "", "", "Unknown", ""],
        ["", "Total", "", "", "", "", "", "", ""],
        ["", "", "", "", "", "", "", "", ""],
        ["x", "", "", "", "", "", "", "", ""],
        ["", "P1", *clean[2:]],
        ["x", "p1", *clean[2:]],
        ["Client ID", "Client ID", *clean[2:]],
        ["x", "P3", "First name", *clean[3:]],
    ]
    _write(Path(m.connector.tables["person"].file), PERSON_HEADERS, rows)
    fast = _fast(m, "person", 4)
    assert fast == _exact(m, "person")
    assert fast[0]["source_id"] == ["P1", "P2", "p1", "Client ID", "P3"]


def test_cells_the_patterns_accept_parse_to_themselves() -> None:
    """Every character up to U+07FF, in an id and in each part of an e-mail address: a cell
    the Arrow pattern accepts is one its parser returns unchanged."""
    chars = [chr(c) for c in range(0x800) if not 0xD800 <= c < 0xE000]
    cells = {
        "source_id": [f"A{ch}1" for ch in chars] + chars,
        "email": [f"a{ch}b@example.org" for ch in chars]
        + [f"{ch}@example.org" for ch in chars]
        + [f"ab@ex{ch}ample.org" for ch in chars]
        + [f"ab@example.o{ch}g" for ch in chars],
    }
    parse = {"source_id": v.parse_id, "email": v.parse_email}
    for name, column in cells.items():
        accepted = pc.match_substring_regex(pa.array(column), ACCEPT[name]).to_pylist()
        taken = [cell for cell, ok in zip(column, accepted, strict=True) if ok]
        assert len(taken) > 60
        for cell in taken:
            assert parse[name](cell) == cell, cell


@pytest.mark.parametrize("collide", [False, True])
def test_seen_ids_answer_as_a_dict_does(monkeypatch: pytest.MonkeyPatch, collide: bool) -> None:
    """Ids registered a block and a row at a time (past the point where rows move to the
    hashed store), checked against a plain dict; with every hash forced into four values,
    only the exact comparison of ids can tell them apart."""
    from connectors.spreadsheets import seen_ids

    if collide:
        real, real_one = seen_ids.id_hashes, seen_ids.hash_one
        monkeypatch.setattr(seen_ids, "id_hashes", lambda ids: real(ids) % 4)
        monkeypatch.setattr(seen_ids, "hash_one", lambda key: real_one(key) % 4)
    monkeypatch.setattr(seen_ids, "_ROWS_KEPT", 50)
    rnd = random.Random(7)
    seen, reference = seen_ids.SeenIds(), {}
    number = 0
    for _ in range(40):
        pool = [f"P{rnd.randint(0, 3000)}" for _ in range(rnd.randint(1, 60))]
        if rnd.random() < 0.5:
            block = list(dict.fromkeys(pool))
            ids = pa.array(block, type=pa.string())
            assert seen_ids.all_distinct(ids) and not seen_ids.all_distinct(
                pa.array([*block, block[0]], type=pa.string())
            )
            clash = not reference.keys().isdisjoint(block)
            assert seen.overlaps(ids) == clash
            assert seen.isdisjoint(block) == (not clash)
            if not clash:
                numbers = list(range(number, number + len(block)))
                seen.add_block(ids, np.array(numbers))
                reference.update(zip(block, numbers, strict=True))
                number += len(block)
        else:
            for key in pool:
                assert seen.get(key) == reference.get(key)
                if key not in reference:
                    seen[key] = reference[key] = number
                    number += 1
    assert all(seen.get(key) == value for key, value in reference.items())
    keys = [*reference, "", "é", "x" * 40]
    assert [seen_ids.hash_one(key) for key in keys] == _hashes(keys)  # one = many
    assert seen.get("nobody") is None and len(seen) == len(reference)


def _hashes(keys: list[str]) -> list[int]:
    """id_hashes of ``keys`` (as the module has it now) as Python ints."""
    from connectors.spreadsheets import seen_ids

    return seen_ids.id_hashes(pa.array(keys, type=pa.string())).tolist()


def _outcome(read: Any) -> Any:
    try:
        return read()
    except Exception as err:  # the same refusal (lines are "near": decoding reads ahead)
        return type(err).__name__, str(err).split("near line")[0]


@pytest.mark.parametrize(
    ("late", "encoding"),
    [
        ('x,P9000,"Eve,Smith,01/02/1990,,M1 1AA,a@example.org,Yes', None),  # unclosed quote
        ("x,P9000," + "a" * 3000 + ",Smith,01/02/1990,,M1 1AA,a@example.org,Yes", None),
        ("x,P9000,Zo\udceb,Smith,01/02/1990,,M1 1AA,a@example.org,Yes", "utf-8"),  # not UTF-8
        ("x,P9000,Eve,Smith,01/02/1990,,M1 1AA,a@example.org,Yes\rx,P9001,Eve", None),  # lone CR
        ("x,P1,Eve,Smith,01/02/1990,,M1 1AA,a@example.org,Yes", None),  # id of block one
        ("", None),  # an empty line
        ("x,P9000,Eve", None),  # a short row
    ],
)
def test_a_problem_far_into_a_file_reads_as_the_per_row_reader_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, late: str, encoding: str | None
) -> None:
    """Thousands of clean rows (Arrow blocks), then a line only the ordinary reader can
    judge: rows, quarantine rows (with their file line numbers) or the refusal are the
    same as when the whole file is read the ordinary way."""
    monkeypatch.setenv("HUB_MAX_FIELD_CHARS", "2000")
    path = tmp_path / "people.csv"
    path.write_text("")
    table: dict[str, Any] = {"file": str(path), "columns": PERSON_COLUMNS}
    if encoding:
        table["encoding"] = encoding
    m = member(tmp_path, {"person": table}, date_order="day_first", null_values=NULLS)
    clean = [
        f"x,P{i},Eve,Smith,{i % 28 + 1:02d}/03/1990,,M1 1AA,p{i}@example.org,Yes"
        for i in range(1, 4000)
    ]
    clean[2405] = 'x,P2406,"Eve",Smith,01/02/1990,,M1 1AA,q@example.org,Yes'  # closes a quote
    lines = [",".join(PERSON_HEADERS), *clean[:2400], late, *clean[2400:]]
    data = "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n"
    Path(m.connector.tables["person"].file).write_bytes(data)
    fast = _outcome(lambda: _fast(m, "person", 500))
    assert fast == _outcome(lambda: _exact(m, "person"))
    assert len(fast) == 2 if encoding or "a" * 3000 in late else len(fast[0]["source_id"]) > 3990
