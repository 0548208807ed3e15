"""Match fields for linkage: what the linker compares must be written one way."""

from __future__ import annotations

from datetime import date
from typing import Any

import pyarrow as pa
import pytest

import transforms.dedup.normalise as normalise
from transforms.dedup.normalise import (
    NORMALISED_COLUMNS,
    NORMALISED_SCHEMA,
    canonical_given_name,
    normalise_people,
)

INPUT_SCHEMA = pa.schema(
    [
        ("org_id", pa.string()),
        ("source_id", pa.string()),
        ("given_name", pa.string()),
        ("family_name", pa.string()),
        ("birth_date", pa.date32()),
        ("email", pa.string()),
        ("phone", pa.string()),
        ("postcode", pa.string()),
        ("consent_to_share", pa.bool_()),
        ("is_deleted", pa.bool_()),
    ]
)


def people(*rows: dict[str, Any], schema: pa.Schema = INPUT_SCHEMA) -> pa.Table:
    """Person rows: org_a unless said otherwise, numbered source ids, every other field null."""
    filled = [
        {"org_id": "org_a", "source_id": str(number), **row}
        for number, row in enumerate(rows, start=1)
    ]
    return pa.Table.from_pylist(
        [{name: row.get(name) for name in schema.names} for row in filled], schema=schema
    )


def normalised(*rows: dict[str, Any], **options: Any) -> list[dict[str, Any]]:
    """Normalise the rows and return them in input order (the output order is free)."""
    out = normalise_people(people(*rows), **options)
    by_id = {row["unique_id"]: row for row in out.to_pylist()}
    return [by_id[f"{row.get('org_id', 'org_a')}|{number}"] for number, row in enumerate(rows, 1)]


def column(field: str, values: list[Any], **options: Any) -> list[Any]:
    """One field through normalisation: one row per value, the field's output in order."""
    return [row[field] for row in normalised(*({field: v} for v in values), **options)]


def test_names_lose_case_accents_punctuation_and_titles() -> None:
    out = normalised(
        {"given_name": "Zoë", "family_name": "O'Neil"},
        {"given_name": "José", "family_name": "Núñez"},
        {"given_name": "  Siân ", "family_name": "D’Arcy"},
        {"given_name": "Mary-Jane", "family_name": "Smith-Jones"},
        {"given_name": "Mr John", "family_name": "Smith   Jones"},
        {"given_name": "Dr. Ann", "family_name": "ØSTERGÅRD"},
        {"given_name": "MISS", "family_name": "-"},
        {"given_name": "MRS   Peggy  Sue", "family_name": "Smith – Jones"},
    )
    assert [(r["given_name"], r["family_name"]) for r in out] == [
        ("zoe", "oneil"),
        ("jose", "nunez"),
        ("sian", "darcy"),
        ("mary jane", "smith jones"),
        ("john", "smith jones"),
        ("ann", "ostergard"),
        (None, None),  # only a title, only punctuation: nothing to compare
        ("peggy sue", "smith jones"),
    ]
    assert [r["family_tokens"] for r in out] == [
        ["oneil"],
        ["nunez"],
        ["darcy"],
        ["smith", "jones"],
        ["smith", "jones"],
        ["ostergard"],
        None,
        ["smith", "jones"],
    ]


def test_given_canonical_is_the_formal_name_of_the_first_given_name() -> None:
    given = ["Bob", "Robert", "Liz", "Elizabeth", "Bill", "William", "Peggy", "Margaret"]
    given += ["Bobby Joe", "Mary-Jane", "Zoë", "Xanthippa", None, "Dr"]
    out = normalised(*({"given_name": name} for name in given))
    assert [row["given_canonical"] for row in out] == [
        "robert",
        "robert",
        "elizabeth",
        "elizabeth",
        "william",
        "william",
        "margaret",
        "margaret",
        "robert",  # only the first given name counts
        "mary",
        "zoe",  # no nicknames known: the name itself
        "xanthippa",
        None,
        None,
    ]


def test_ambiguous_nicknames_resolve_the_same_way_every_time() -> None:
    # The nicknames data lists bill under robert and william, and robert as a nickname of
    # bob: popularity decides, and the lookup is the same on every call and in every process.
    assert [canonical_given_name(n) for n in ("bill", "billy", "will", "bob", "rob")] == [
        "william",
        "william",
        "william",
        "robert",
        "robert",
    ]
    assert [canonical_given_name(n) for n in ("jim", "sue", "ted", "kathy", "sally")] == [
        "james",
        "susan",
        "edward",
        "catherine",
        "sarah",
    ]
    assert canonical_given_name("mary") == "mary"  # formal names stay themselves
    assert len(set(normalise.COMMON_GIVEN_NAMES)) == len(normalise.COMMON_GIVEN_NAMES)


def test_birth_date_swap_only_when_day_and_month_can_be_exchanged() -> None:
    out = normalised(
        {"birth_date": date(1980, 4, 3)},
        {"birth_date": date(1980, 4, 13)},
        {"birth_date": date(1980, 5, 5)},
        {"birth_date": date(1980, 12, 1)},
        {"birth_date": None},
    )
    assert [(r["birth_date_swapped"], r["birth_year"]) for r in out] == [
        (date(1980, 3, 4), 1980),
        (None, 1980),
        (None, 1980),
        (date(1980, 1, 12), 1980),
        (None, None),
    ]


def test_birth_date_may_arrive_as_iso_text() -> None:
    schema = INPUT_SCHEMA.set(4, pa.field("birth_date", pa.string()))
    table = people(
        {"birth_date": "1980-04-03"},
        {"birth_date": " 1975-11-02 "},
        {"birth_date": "not a date"},
        {"birth_date": ""},
        schema=schema,
    )
    out = sorted(normalise_people(table).to_pylist(), key=lambda r: r["source_id"])
    assert [(r["birth_date"], r["birth_date_swapped"]) for r in out] == [
        (date(1980, 4, 3), date(1980, 3, 4)),
        (date(1975, 11, 2), date(1975, 2, 11)),
        (None, None),
        (None, None),
    ]


def test_phones_become_e164_in_the_members_region() -> None:
    out = normalised(
        {"phone": "07700 900123"},
        {"phone": "+44 (0)7700 900123"},
        {"phone": "0044 7700-900123"},
        {"phone": "(020) 7946 0018"},
        {"phone": "+447700900123"},
        {"phone": "087 123 4567", "org_id": "org_ie"},
        {"phone": "+44 7700 900123", "org_id": "org_ie"},
        {"phone": "12"},
        {"phone": "not a phone"},
        {"phone": "   "},
        {"phone": None},
        phone_regions={"org_ie": "IE"},
    )
    assert [r["phone"] for r in out] == [
        "+447700900123",
        "+447700900123",
        "+447700900123",
        "+442079460018",
        "+447700900123",
        "+353871234567",
        "+447700900123",
        None,
        None,
        None,
        None,
    ]


def test_default_region_applies_to_members_without_their_own() -> None:
    assert column("phone", ["087 123 4567"], default_region="IE") == ["+353871234567"]


def test_each_distinct_phone_is_parsed_once_and_known_forms_never(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[str, str]] = []
    parse = normalise.parse_phone

    def counting(value: str, region: str = "GB") -> str | None:
        calls.append((value, region))
        return parse(value, region)

    monkeypatch.setattr(normalise, "parse_phone", counting)
    phones = ["+447700900123"] * 5 + ["+15551234567"]  # E.164, as the hub stores phones
    phones += ["07700 900124", "+44 7700 900125", "0044 7700-900126"]  # UK forms
    phones += ["+44 (0)7700 900127"] * 3  # needs phonenumbers, once
    assert (
        column("phone", phones)
        == ["+447700900123"] * 5
        + [
            "+15551234567",
            "+447700900124",
            "+447700900125",
            "+447700900126",
        ]
        + ["+447700900127"] * 3
    )
    assert calls == [("+44 (0)7700 900127", "GB")]


PHONE_FORMS = [
    "07700 900123",
    "07700-900-123",
    "(020) 7946 0018",
    "(0)20 7946 0018",
    "020.7946.0018",
    "+44 20 7946 0018",
    "+44 (0)20 7946 0018",
    "+44 020 7946 0018",
    "+4402079460018",
    "0044 20 7946 0018",
    "00 44 20 7946 0018",
    "+447700900123",
    "+39 06 1234 5678",
    "0039 06 1234 5678",
    "087 123 4567",
    "01234 56789",
    "0800 123 456",
    "7700900123",
    "+1 (415) 555-2671",
    "12",
    "++447700900123",
    "07700\u00a0900123",
    "07700\t900123",
]


@pytest.mark.parametrize("region", ["GB", "IE"])
def test_phone_shortcuts_agree_with_the_loader(region: str) -> None:
    def loader(value: str) -> str | None:
        try:
            return normalise.parse_phone(value, region)
        except normalise.ValueProblem:
            return None

    assert column("phone", PHONE_FORMS, default_region=region) == [
        loader(value) for value in PHONE_FORMS
    ]


def test_emails_are_trimmed_lowered_and_checked() -> None:
    emails = [
        "  John.Smith@Example.COM ",
        "john smith@example.com",
        "MAILTO:x@y.org",
        "a@b@c.com",
        "john@localhost",
        "john..smith@example.com",
        "",
        None,
    ]
    assert column("email", emails) == [
        "john.smith@example.com",
        "johnsmith@example.com",
        "x@y.org",
        None,
        None,
        None,
        None,
        None,
    ]


def test_postcodes_take_one_space_and_give_their_outward_part() -> None:
    out = normalised(
        {"postcode": "m145ab"},
        {"postcode": " sw1a   1aa "},
        {"postcode": "M1 1AE"},
        {"postcode": "gir0aa"},
        {"postcode": "d02  x285"},
        {"postcode": "   "},
        {"postcode": None},
    )
    assert [(r["postcode"], r["postcode_outward"]) for r in out] == [
        ("M14 5AB", "M14"),
        ("SW1A 1AA", "SW1A"),
        ("M1 1AE", "M1"),
        ("GIR 0AA", "GIR"),
        ("D02 X285", None),  # not UK-shaped (an Eircode): kept, no outward code
        (None, None),
        (None, None),
    ]


def test_ids_and_consent() -> None:
    out = normalised(
        {"consent_to_share": True},
        {"consent_to_share": False},
        {"consent_to_share": None, "org_id": "org_b"},
    )
    assert [(r["unique_id"], r["org_id"], r["source_id"], r["consent"]) for r in out] == [
        ("org_a|1", "org_a", "1", True),
        ("org_a|2", "org_a", "2", False),
        ("org_b|3", "org_b", "3", False),
    ]


def test_every_row_comes_out_even_when_every_field_is_null() -> None:
    table = pa.Table.from_pylist(
        [dict.fromkeys(INPUT_SCHEMA.names)] * 2
        + [{"org_id": "org_a", "source_id": "9", "given_name": "Ann"}],
        schema=INPUT_SCHEMA,
    )
    out = normalise_people(table)
    assert out.num_rows == 3
    rows = sorted(out.to_pylist(), key=lambda r: r["source_id"] or "")
    empty = dict.fromkeys(NORMALISED_SCHEMA.names)
    assert rows[:2] == [{**empty, "consent": False}] * 2
    assert rows[2]["given_name"] == "ann"


def test_row_count_and_schema_are_kept() -> None:
    rows = [{"given_name": f"Name {i}", "phone": f"07700 9{i:05d}"} for i in range(500)]
    table = people(*rows)
    out = normalise_people(table)
    assert out.num_rows == 500
    assert out.schema == NORMALISED_SCHEMA
    assert [(f.name, f.type) for f in out.schema] == list(NORMALISED_COLUMNS)
    assert sorted(out.column("unique_id").to_pylist()) == sorted(
        f"org_a|{i}" for i in range(1, 501)
    )


def test_missing_input_column_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="phone"):
        normalise_people(people({}).drop_columns(["phone"]))


def test_rows_come_out_in_the_input_order() -> None:
    # Many record batches, as a warehouse read returns them: DuckDB scans them in parallel,
    # which on its own would reorder the rows.
    n = 300_000
    forms = ("07700 9{:05d}", "+4477009{:05d}", "0044 7700 9{:05d}")
    table = pa.table(
        {
            "org_id": pa.array(["org_a"] * n),
            "source_id": pa.array([str(i) for i in range(n)]),
            "given_name": pa.array([f"Name{i % 997}" for i in range(n)]),
            "family_name": pa.array([None] * n, pa.string()),
            "birth_date": pa.array([None] * n, pa.date32()),
            "email": pa.array([None] * n, pa.string()),
            "phone": pa.array([forms[i % 3].format(i % 100_000) for i in range(n)]),
            "postcode": pa.array([None] * n, pa.string()),
            "consent_to_share": pa.array([True] * n),
        }
    )
    table = pa.Table.from_batches(table.to_batches(max_chunksize=10_000))
    out = normalise_people(table)
    assert out["source_id"].to_pylist() == table["source_id"].to_pylist()
    assert out["phone"].to_pylist()[:3] == ["+447700900000", "+447700900001", "+447700900002"]
