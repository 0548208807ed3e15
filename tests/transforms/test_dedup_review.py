"""The review queue: pairs the model is unsure about, masked for a person, decided by one.

A small network goes through the real linkage run (normaliser, bundled Splink model) into a
real DuckDB file, so the queued pairs are the model's own; decisions are then recorded and a
second run must honour them. Verdicts and masks are checked on a queue written by hand, where
every kind of agreement can be set up on purpose.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from transforms.canonical import ensure_schema
from transforms.dedup.review import (
    NotLinkedError,
    PairIds,
    ReviewError,
    pending_pairs,
    record_decision,
)
from transforms.linkage import link_people
from transforms.warehouse import DuckDBWarehouse, PostgresWarehouse, Warehouse

Person = tuple[str, str, str, str, date | None, str | None, str | None, str | None, bool]

# Sixteen people with nothing in common, so that the names of the pairs below are rare in the
# network (the model weighs agreement on a rare name more) and each pair stays in the queue.
_NAMES = (
    ("Ada", "Ashcombe"), ("Bryn", "Birtle"), ("Cora", "Carrow"), ("Dov", "Dunmere"),
    ("Elsa", "Eskdale"), ("Finn", "Fenwick"), ("Gwen", "Garside"), ("Hal", "Holloway"),
    ("Iona", "Ingleby"), ("Jude", "Jessop"), ("Kai", "Kettle"), ("Lena", "Lowther"),
    ("Milo", "Marlow"), ("Nora", "Nettle"), ("Otis", "Orchard"), ("Pia", "Pennock"),
)  # fmt: skip
OTHERS: list[Person] = [
    (
        "north_aid" if i % 2 else "south_care",
        f"F-{i}",
        given,
        family,
        date(1950 + 3 * i, 1 + i % 12, 1 + i),
        None,
        None,
        None,
        True,
    )
    for i, (given, family) in enumerate(_NAMES)
]
# Same name, one birth date missing, postcodes in different towns, one more field in common:
# the bundled model scores these about 0.83 (phone) and 0.80 (e-mail), between the review
# threshold (0.5) and the accept threshold (0.95).
RUTH: list[Person] = [
    ("north_aid", "N-107", "Ruth", "Oakhanger", date(2001, 8, 30), None, "+447700900999",
     "M21 0AB", True),
    ("south_care", "S-208", "Ruth", "Oakhanger", None, None, "+447700900999", "LS6 2QT", True),
]  # fmt: skip
ESME: list[Person] = [
    ("north_aid", "N-111", "Esme", "Varcoe", date(1993, 6, 6), "esme.varcoe@example.com", None,
     "M21 0AB", True),
    ("south_care", "S-212", "Esme", "Varcoe", None, "esme.varcoe@example.com", None, "LS6 2QT",
     True),
]  # fmt: skip
RUTH_IDS = PairIds("north_aid", "N-107", "south_care", "S-208")
ESME_IDS = PairIds("north_aid", "N-111", "south_care", "S-212")
# What must never reach a reviewer's screen.
FULL_VALUES = (
    "Ruth", "Oakhanger", "2001-08-30", "+447700900999", "900999", "M21 0AB", "LS6 2QT", "Esme",
    "Varcoe", "esme.varcoe", "example.com", "1993-06-06",
)  # fmt: skip


def add_people(warehouse: Warehouse, people: list[Person], deleted: bool = False) -> None:
    """Write canonical.person rows as a member's canonical build would."""
    with warehouse.connect() as session:
        ensure_schema(session, warehouse.dialect)
        for org, source_id, *fields in people:
            session.execute(
                "INSERT INTO canonical.person (org_id, source_system, source_id, is_deleted, "
                "given_name, family_name, birth_date, email, phone, postcode, consent_to_share) "
                "VALUES (?, 'spreadsheet', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [org, source_id, deleted, *fields],
            )


def linked_network(warehouse: Warehouse) -> Warehouse:
    """The network above, loaded and linked once: RUTH and ESME wait for review."""
    add_people(warehouse, OTHERS + RUTH + ESME)
    result = link_people(warehouse)
    assert result.review_queue == 2
    return warehouse


def person_keys(warehouse: Warehouse) -> dict[tuple[str, str], str]:
    with warehouse.connect() as session:
        rows = session.fetchall("SELECT org_id, source_id, person_key FROM hub.person_link")
    return {(org, sid): key for org, sid, key in rows}


def queued(warehouse: Warehouse) -> list[PairIds]:
    with warehouse.connect() as session:
        rows = session.fetchall(
            "SELECT org_id_l, source_id_l, org_id_r, source_id_r FROM hub.link_review"
        )
    return sorted(PairIds(*r) for r in rows)


@pytest.fixture()
def network(tmp_path: Path) -> Warehouse:
    return linked_network(DuckDBWarehouse(tmp_path / "warehouse.duckdb"))


def test_queued_pairs_are_shown_masked_with_how_each_field_compares(network: Warehouse) -> None:
    pairs = pending_pairs(network)
    assert [p.ids for p in pairs] == [RUTH_IDS, ESME_IDS]  # most likely first
    ruth, esme = pairs
    assert 0.5 <= esme.match_probability < ruth.match_probability < 0.95
    assert ruth.model_version and ruth.model_version.startswith("m_")
    assert ruth.consent_l and ruth.consent_r
    shown = {f.label: (f.left, f.right, f.agreement) for f in ruth.fields}
    assert shown == {
        "given name": ("R•••", "R•••", "same"),
        "family name": ("O•••", "O•••", "same"),
        "birth date": ("2001-••-••", "—", "missing"),
        "email": ("—", "—", "missing"),
        "phone": ("•••999", "•••999", "same"),
        "postcode": ("M21 •••", "LS6 •••", "different"),
    }
    assert esme.agreement("email") == "same"
    assert [f.left for f in esme.fields][3] == "e•••@•••.com"
    text = repr(pairs)
    assert not [value for value in FULL_VALUES if value in text]


def test_accept_joins_and_reject_separates_on_the_next_run(network: Warehouse) -> None:
    before = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=1)
    ruth, _ = pending_pairs(network)
    assert record_decision(network, ruth, "accept", "alex") is None
    assert record_decision(network, list(ESME_IDS), "Reject", "sam") is None
    with network.connect() as session:
        decisions = session.fetchall(
            "SELECT org_id_l, source_id_l, org_id_r, source_id_r, decision, decided_by, "
            "decided_at FROM hub.link_decision ORDER BY source_id_l"
        )
    assert [d[:6] for d in decisions] == [
        (*RUTH_IDS, "accept", "alex"),
        (*ESME_IDS, "reject", "sam"),
    ]
    assert all(before <= d[6] <= datetime.now(UTC).replace(tzinfo=None) for d in decisions)
    # Decided pairs leave the queue at once, not only at the next run.
    assert queued(network) == [] and pending_pairs(network) == []

    link_people(network)
    keys = person_keys(network)
    assert keys[RUTH_IDS[:2]] == keys[RUTH_IDS[2:]]  # the reviewer's accept joins them
    assert keys[ESME_IDS[:2]] != keys[ESME_IDS[2:]]  # the reviewer's reject keeps them apart
    assert queued(network) == []  # and neither pair is asked about again

    # A reviewer can change their mind, from either side of the pair: one decision per pair.
    assert record_decision(network, PairIds(*ESME_IDS[2:], *ESME_IDS[:2]), "accept", "sam") == (
        "reject"
    )
    with network.connect() as session:
        assert session.fetchall(
            "SELECT source_id_l, decision FROM hub.link_decision WHERE decided_by = 'sam'"
        ) == [("S-212", "accept")]
    link_people(network)
    keys = person_keys(network)
    assert keys[ESME_IDS[:2]] == keys[ESME_IDS[2:]]


def test_decisions_that_cannot_be_recorded_say_why(network: Warehouse, tmp_path: Path) -> None:
    with pytest.raises(ReviewError, match="unknown decision 'maybe': say accept or reject"):
        record_decision(network, RUTH_IDS, "maybe", "alex")
    with pytest.raises(ReviewError, match="no person record 'N-999' from member 'north_aid'"):
        record_decision(network, ("north_aid", "N-999", "south_care", "S-208"), "accept", "alex")
    with pytest.raises(ReviewError, match="one record, not a pair"):
        record_decision(network, ("north_aid", "N-107", "north_aid", "N-107"), "reject", "alex")
    with pytest.raises(ReviewError, match="name of the person"):
        record_decision(network, RUTH_IDS, "accept", " ")
    with network.connect() as session:
        assert session.fetchall("SELECT COUNT(*) FROM hub.link_decision") == [(0,)]
    assert len(queued(network)) == 2  # nothing half-done

    unlinked = DuckDBWarehouse(tmp_path / "unlinked.duckdb")
    add_people(unlinked, RUTH)  # loaded, never linked
    with pytest.raises(NotLinkedError, match="run `hub run`"):
        pending_pairs(unlinked)
    with pytest.raises(NotLinkedError):
        record_decision(unlinked, RUTH_IDS, "accept", "alex")


def _queue_by_hand(warehouse: Warehouse, pairs: list[tuple[Person, Person, float]]) -> None:
    """A queue written directly, as if a linkage run had put these pairs in it."""
    add_people(warehouse, [p for left, right, _ in pairs for p in (left, right)])
    with warehouse.connect() as session:
        session.execute(
            "INSERT INTO hub.linkage_model VALUES ('m_test', TIMESTAMP '2026-01-01 00:00:00', "
            "0, '{}')"
        )
        for left, right, probability in pairs:
            session.execute(
                "INSERT INTO hub.link_review VALUES (?, ?, ?, ?, ?, 'm_test', "
                "TIMESTAMP '2026-01-01 00:00:00')",
                [left[0], left[1], right[0], right[1], probability],
            )


def test_every_kind_of_agreement_and_mask(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    born = date(1984, 3, 7)
    _queue_by_hand(
        warehouse,
        [
            (
                ("a", "1", "Robert", "Quill-Jones", born, "rob.q@mail.example.org",
                 "+447700900123", "M14 5AB", True),
                ("b", "2", "Bob", "Jones", date(1984, 7, 3), "bob@other.example.net",
                 "+447700900124", "M14 6ZZ", False),
                0.7,
            ),
            (
                ("a", "3", "Katherine", "Ellery", born, None, None, "D02 X285", True),
                ("c", "4", "Katharine", "Elery", date(1984, 3, 8), None, None, None, True),
                0.6,
            ),
            (
                ("b", "5", "Mr Idris", "Penhale", born, "not an email", None, "M14 5AB", True),
                ("c", "6", "Yusuf", "Tregothnan", date(1984, 11, 20), "y@x.org", None,
                 "M14 5AB", True),
                0.55,
            ),
        ],
    )  # fmt: skip
    first, second, third = pending_pairs(warehouse)
    assert [(f.label, f.left, f.right, f.agreement) for f in first.fields] == [
        ("given name", "R•••", "B•••", "nickname"),
        ("family name", "Q••• J•••", "J•••", "shares a part"),
        ("birth date", "1984-••-••", "1984-••-••", "swapped day/month"),
        ("email", "r•••@•••.org", "b•••@•••.net", "different"),
        ("phone", "•••123", "•••124", "one digit apart"),
        ("postcode", "M14 •••", "M14 •••", "same district"),
    ]
    assert (first.consent_l, first.consent_r) == (True, False)
    assert [f.agreement for f in second.fields] == [
        "similar", "similar", "one digit apart", "missing", "missing", "missing",
    ]  # fmt: skip
    assert second.fields[5].left == "•••"  # not a UK postcode: no district to show
    assert [(f.left, f.right, f.agreement) for f in third.fields[:3]] == [
        ("I•••", "Y•••", "different"),  # the title is not part of the name
        ("P•••", "T•••", "different"),
        ("1984-••-••", "1984-••-••", "within a year"),
    ]
    assert third.fields[3].left == "—"  # an e-mail the linker could not read is missing
    assert third.agreement("postcode") == "same"
    # A member's reviewer sees only pairs with one of its records.
    assert [p.ids.source_id_r for p in pending_pairs(warehouse, org_id="c")] == ["4", "6"]
    assert pending_pairs(warehouse, org_id="nobody") == []


def test_deleted_records_and_decided_pairs_are_not_shown(tmp_path: Path) -> None:
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    _queue_by_hand(warehouse, [(RUTH[0], RUTH[1], 0.8), (ESME[0], ESME[1], 0.7)])
    with warehouse.connect() as session:
        # Decided in the opposite orientation to the queue's (both count).
        session.execute(
            "INSERT INTO hub.link_decision VALUES (?, ?, ?, ?, 'reject', 'sam', "
            "TIMESTAMP '2026-01-01 00:00:00')",
            [*RUTH_IDS[2:], *RUTH_IDS[:2]],
        )
    assert [p.ids for p in pending_pairs(warehouse)] == [ESME_IDS]
    with warehouse.connect() as session:
        session.execute("UPDATE canonical.person SET is_deleted = true WHERE source_id = 'S-212'")
    assert pending_pairs(warehouse) == []


def test_decisions_round_trip_on_postgresql(postgres_dsn: str) -> None:
    warehouse = linked_network(PostgresWarehouse(postgres_dsn))
    ruth, esme = pending_pairs(warehouse)
    assert (ruth.ids, esme.ids) == (RUTH_IDS, ESME_IDS)
    assert ruth.agreement("phone") == "same" and esme.fields[3].left == "e•••@•••.com"
    record_decision(warehouse, ruth, "accept", "alex")
    record_decision(warehouse, esme, "reject", "alex")
    assert queued(warehouse) == [] and pending_pairs(warehouse) == []
    link_people(warehouse)
    keys = person_keys(warehouse)
    assert keys[RUTH_IDS[:2]] == keys[RUTH_IDS[2:]]
    assert keys[ESME_IDS[:2]] != keys[ESME_IDS[2:]]
    assert queued(warehouse) == []
