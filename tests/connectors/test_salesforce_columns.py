"""Whole-column typing of Salesforce pages (issue #19, speed) reads exactly what the value-by-value
reading did, Bulk CSV and REST JSON alike; and the Bulk job is polled soon, not after 2 s.

The reference for every column is ``_parse_value``, the per-value reading the connector used for
every value before (and still uses for a column Arrow cannot take whole): the whole-column route
must give the same values, the same nulls and the same unreadable positions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pyarrow as pa
import pytest

from connectors.salesforce_npsp.client import (
    ApiAllocationReserveReached,
    SalesforceClient,
    _json,
    parse_bulk_csv,
)
from connectors.salesforce_npsp.settings import ClientCredentials, SalesforceSettings
from connectors.salesforce_npsp.source import (
    _ARROW_TYPES,
    UNREADABLE_COLUMN,
    _arrow_column,
    _batched,
    _parse_value,
    arrow_page,
)
from sandboxes.salesforce_npsp import SalesforceSandbox, SandboxSizes

# Each column mixes the shapes Salesforce sends with ones only a damaged or hand-made value has;
# the odd ones must come out as the per-value reading says (read, or left empty and reported).
COLUMNS: list[tuple[str, list[Any]]] = [
    ("timestamp", ["2025-01-31T09:15:00.000+0000", "2025-01-31T09:15:00.000Z", None, ""]),
    ("timestamp", ["2025-01-31T09:15:00+05:30", "2025-01-31T09:15:00.000-0130"]),
    ("timestamp", ["2025-02-30T00:00:00.000+0000", "2025-01-31T09:15:00.000Z"]),
    # One odd value each, next to good ones: Arrow would read it differently from Python.
    ("timestamp", ["9999-12-31T23:59:59.000-0100", "2025-01-31T09:15:00.000Z"]),
    ("timestamp", ["0000-01-01T00:00:00.000Z", "2025-01-31T09:15:00.000Z"]),
    ("timestamp", [" 2025-01-31T09:15:00.000Z", "2025-01-31T24:00:00.000Z", "2025-01-31"]),
    ("date", ["2025-01-31", "2024-02-29", "2025-01-31T10:00:00.000+0000", None, ""]),
    ("date", ["2025-02-29", "2025-01-31"]),
    ("date", ["0000-01-01", "2025-01-31"]),
    ("date", ["31/02/garbage", "2025-W01-1", "2025-1-1"]),
    ("bigint", [1, -2, None, 0]),
    ("bigint", [3.7, -3.7, 4]),
    ("bigint", ["0x10", "12", ""]),
    ("bigint", ["+3", " 4", "1_000", "12"]),
    ("bigint", [True, 2**70]),
    ("double", [1.5, 2, None, -0.0]),
    ("double", ["1e5", "nan", "Infinity", ".5", "5.", "+3"]),
    ("double", ["0x10", "1,5", " 2.5"]),
    ("double", [True, 2.5, 2**60 + 1]),
    ("bool", [True, False, None]),
    ("bool", ["true", " FALSE ", "", None]),
    ("bool", ["yes", "true"]),
    ("bool", [1, 0]),
    ("text", ["a", "", None, 'O"Neil, "the elder"', "Line one\nLine two"]),
    ("text", [1, "a", 2.5, True]),
    ("text", [{"city": "Leeds"}, None]),
    ("text", [None, None]),
]


def _per_value(values: list[Any], kind: str) -> tuple[list[Any], list[int]]:
    """The value-by-value reading: what every column went through before."""
    if kind not in _ARROW_TYPES:
        return [None if v is None else str(v) for v in values], []
    out, bad = [], []
    for i, value in enumerate(values):
        try:
            out.append(_parse_value(value, kind))
        except (ValueError, TypeError, OverflowError):
            out.append(None)
            bad.append(i)
    return out, bad


def _same(got: list[Any], expected: list[Any]) -> bool:
    """Equal lists, where NaN equals NaN."""
    return len(got) == len(expected) and all(
        a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)
        for a, b in zip(got, expected, strict=True)
    )


def test_every_column_reads_as_value_by_value_did() -> None:
    """One test over all of COLUMNS (each case is cheap; a test each would mostly cost the
    suite's per-test teardown)."""
    for kind, values in COLUMNS:
        _check_column(kind, values)


def _check_column(kind: str, values: list[Any]) -> None:
    case = f"{kind} {values!r}"
    expected, expected_bad = _per_value(values, kind)
    bad: list[int] = []
    try:
        column = _arrow_column(values, kind, bad)
    except (pa.ArrowInvalid, OverflowError):
        # The per-value reading itself cannot build this column (an integer past 64 bits):
        # it must fail the same way, not silently differ.
        with pytest.raises((pa.ArrowInvalid, OverflowError)):
            pa.array(expected, _ARROW_TYPES.get(kind, pa.string()))
        return
    assert column.type == _ARROW_TYPES.get(kind, pa.string()), case
    assert _same(column.to_pylist(), expected), case
    assert bad == expected_bad, case
    # The same text arriving as an Arrow column (a Bulk result set) reads the same way.
    if all(v is None or isinstance(v, str) for v in values):
        arrow_text = pa.array([None if v == "" else v for v in values], pa.string())
        from_bulk = _arrow_column(arrow_text, kind, [])
        assert _same(from_bulk.to_pylist(), _per_value(arrow_text.to_pylist(), kind)[0]), case


# ------------------------------------------------------------------------------ Bulk CSV

TYPES = {
    "Id": "id",
    "IsDeleted": "boolean",
    "FirstName": "string",
    "MailingCity": "textarea",
    "Amount__c": "currency",
    "Visits__c": "int",
    "SystemModstamp": "datetime",
    "Birthdate": "date",
}
KINDS = {
    "Id": "text",
    "IsDeleted": "bool",
    "FirstName": "text",
    "MailingCity": "text",
    "Amount__c": "double",
    "Visits__c": "bigint",
    "SystemModstamp": "timestamp",
    "Birthdate": "date",
}
BULK_CSV = (
    b'"Id","IsDeleted","FirstName","MailingCity","Amount__c","Visits__c","SystemModstamp",'
    b'"Birthdate"\n'
    b'"0035g00000AAAAAAAA","false","Ann","Line one\nLine two, ""3""","12.5","3",'
    b'"2025-01-31T09:15:00.000Z","1980-02-29"\n'
    b'"0035g00000BBBBBBBB","true","Bob","","","","2025-02-01T00:00:00.000Z",""\n'
    b'"0035g00000CCCCCCCC","false",,"O""Neil, ""the elder""","-0.25","0",'
    b'"2025-02-01T00:00:00.000Z","2001-12-31"\n'
)
# The same three records as the REST API's JSON gives them.
REST_RECORDS: list[dict[str, Any]] = [
    {
        "Id": "0035g00000AAAAAAAA",
        "IsDeleted": False,
        "FirstName": "Ann",
        "MailingCity": 'Line one\nLine two, "3"',
        "Amount__c": 12.5,
        "Visits__c": 3,
        "SystemModstamp": "2025-01-31T09:15:00.000+0000",
        "Birthdate": "1980-02-29",
    },
    {
        "Id": "0035g00000BBBBBBBB",
        "IsDeleted": True,
        "FirstName": "Bob",
        "MailingCity": None,
        "Amount__c": None,
        "Visits__c": None,
        "SystemModstamp": "2025-02-01T00:00:00.000+0000",
        "Birthdate": None,
    },
    {
        "Id": "0035g00000CCCCCCCC",
        "IsDeleted": False,
        "FirstName": None,
        "MailingCity": 'O"Neil, "the elder"',
        "Amount__c": -0.25,
        "Visits__c": 0,
        "SystemModstamp": "2025-02-01T00:00:00.000+0000",
        "Birthdate": "2001-12-31",
    },
]


def test_bulk_csv_and_rest_json_give_the_same_table() -> None:
    bulk = arrow_page(parse_bulk_csv(BULK_CSV, TYPES), KINDS, sobject="Contact")
    rest = arrow_page(REST_RECORDS, KINDS, sobject="Contact")
    assert bulk.schema == rest.schema
    assert bulk.to_pylist() == rest.to_pylist()
    rows = bulk.to_pylist()
    assert rows[0]["MailingCity"] == 'Line one\nLine two, "3"'  # embedded newline and quotes
    assert rows[2]["MailingCity"] == 'O"Neil, "the elder"'
    assert rows[2]["FirstName"] is None  # an empty field is null, quoted or not
    assert rows[0]["Amount__c"] == 12.5 and rows[0]["Visits__c"] == 3
    assert str(rows[0]["SystemModstamp"]) == "2025-01-31 09:15:00+00:00"
    # A deleted contact keeps no personal field, on the Bulk path too.
    assert rows[1]["IsDeleted"] is True and rows[1]["FirstName"] is None
    assert all(r[UNREADABLE_COLUMN] is None for r in rows)


def test_a_bulk_number_that_is_not_one_is_reported_not_fatal() -> None:
    """Before, one such value made the whole Bulk load fail (float() raised while parsing)."""
    data = BULK_CSV.replace(b'"12.5","3"', b'"12.5x","3"')
    unreadable: dict[str, list[str]] = {}
    rows = arrow_page(parse_bulk_csv(data, TYPES), KINDS, unreadable, "Contact").to_pylist()
    assert rows[0]["Amount__c"] is None and rows[2]["Amount__c"] == -0.25
    assert json.loads(rows[0][UNREADABLE_COLUMN]) == {"Amount__c": ["double", "99.9x"]}
    assert unreadable == {"Amount__c": ["0035g00000AAAAAAAA"]}


def test_bulk_date_times_are_typed_once_and_a_bad_one_reads_as_on_rest() -> None:
    """Bulk dateTimes are typed while the result set is parsed (not rewritten to REST's
    '+0000' text and checked again per page); one that cannot be read still leaves the
    column to be read value by value and is reported in REST's words."""
    typed = parse_bulk_csv(BULK_CSV, TYPES)
    assert pa.types.is_timestamp(typed.column("SystemModstamp").type)
    bad = BULK_CSV.replace(b"2025-02-01T00:00:00.000Z", b"2025-02-30T00:00:00.000Z", 1)
    unreadable: dict[str, list[str]] = {}
    rows = arrow_page(parse_bulk_csv(bad, TYPES), KINDS, unreadable, "Contact").to_pylist()
    rest = [dict(r) for r in REST_RECORDS]
    rest[1]["SystemModstamp"] = "2025-02-30T00:00:00.000+0000"
    assert rows == arrow_page(rest, KINDS, sobject="Contact").to_pylist()
    assert rows[1]["SystemModstamp"] is None and rows[0]["SystemModstamp"] is not None
    assert unreadable == {"SystemModstamp": ["0035g00000BBBBBBBB"]}


@pytest.mark.parametrize("body", [b"", b"\n", b'"Id","IsDeleted"\n'])
def test_an_empty_result_set_has_no_rows(body: bytes) -> None:
    assert parse_bulk_csv(body, TYPES).num_rows == 0


def test_a_body_arrow_cannot_read_is_read_by_the_csv_module() -> None:
    data = b'"Id","FirstName"\n"0035g00000AAAAAAAA","Ren\xe9e"\n'  # Latin-1, not UTF-8
    table = parse_bulk_csv(data, TYPES)
    assert table.column("FirstName").to_pylist() == ["Ren\ufffde"]


# ------------------------------------------------------------------------------ REST


def test_query_pages_are_batched_and_a_stop_still_hands_over_what_was_read() -> None:
    def pages(stop: bool) -> Iterator[list[dict[str, Any]]]:
        for n in range(5):
            yield [{"Id": f"{n}-{i}"} for i in range(3)]
        if stop:
            raise ApiAllocationReserveReached(90, 100)

    assert [len(b) for b in _batched(pages(False), records=7)] == [9, 6]
    got: list[int] = []
    with pytest.raises(ApiAllocationReserveReached):
        for batch in _batched(pages(True), records=7):
            got.append(len(batch))
    assert got == [9, 6]


def test_a_page_orjson_refuses_is_read_by_json() -> None:
    assert _json(httpx.Response(200, content=b'{"a": NaN, "b": [1]}'))["b"] == [1]
    assert _json(httpx.Response(200, content=b'{"done": true}')) == {"done": True}


# ------------------------------------------------------------------------------ Bulk polling


def test_a_bulk_job_is_polled_at_once_then_soon() -> None:
    """The sandbox's job is InProgress at the first poll and complete at the second: the only
    wait is the short first delay (it was a fixed 2 s)."""
    sleeps: list[float] = []
    with SalesforceSandbox(sizes=SandboxSizes(contacts=5, engagements=1, deliveries=1)) as sf:
        settings = SalesforceSettings(login_url=sf.url, client_id=sf.client_id)
        with SalesforceClient(
            settings, ClientCredentials(sf.client_secret), sleep=sleeps.append
        ) as client:
            job = client.bulk_job("SELECT Id, LastName FROM Contact")
            rows = sum(t.num_rows for t in client.bulk_pages(job, {"Id": "id"}))
    assert rows == 5
    assert sleeps == [0.2]


def test_work_given_to_a_bulk_job_runs_in_its_first_wait_and_keeps_the_schedule() -> None:
    """``meanwhile`` runs once while the job is InProgress; the wait after it is shortened by
    the time it took, so the second poll comes when it would have."""
    sleeps: list[float] = []
    ran: list[int] = []
    with SalesforceSandbox(sizes=SandboxSizes(contacts=5, engagements=1, deliveries=1)) as sf:
        settings = SalesforceSettings(login_url=sf.url, client_id=sf.client_id)
        with SalesforceClient(
            settings, ClientCredentials(sf.client_secret), sleep=sleeps.append
        ) as client:

            def meanwhile() -> None:
                ran.append(client.requests_made)
                time.sleep(0.05)

            job = client.bulk_job("SELECT Id, LastName FROM Contact", meanwhile=meanwhile)
            rows = sum(t.num_rows for t in client.bulk_pages(job, {"Id": "id"}))
    assert rows == 5
    assert ran == [ran[0]] and ran[0] >= 2  # once, after the job was created and polled
    assert len(sleeps) == 1 and 0.0 <= sleeps[0] <= 0.2 - 0.05
