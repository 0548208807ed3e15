"""Person linkage on hand-made records: hard cases, consent, decisions and stable keys.

Records go through the real normaliser and the bundled Splink model (DuckDB); expected
groupings are written out by hand.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pyarrow as pa
import pytest

from transforms.dedup.cluster import Link, assign_keys, cluster
from transforms.dedup.link import link_records
from transforms.dedup.normalise import normalise_people

Row = tuple[str, str, str, str, date | None, str | None, str | None, str | None, bool]


def _records(rows: list[Row]) -> pa.Table:
    names = [
        "org_id",
        "source_id",
        "given_name",
        "family_name",
        "birth_date",
        "email",
        "phone",
        "postcode",
        "consent_to_share",
    ]
    return normalise_people(pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)}))


def _groups(rows: list[Row], **kwargs: Any) -> dict[str, int]:
    outcome = link_records(_records(rows), **kwargs)
    return dict(
        zip(
            [u.split("|", 1)[1] for u in outcome.links["unique_id"].to_pylist()],
            outcome.links["group"].to_pylist(),
            strict=True,
        )
    )


BORN = date(1984, 3, 7)
HOME = ("the.ashdowns@example.org", "+441614960000", "M14 5AB")


def test_same_person_across_members_despite_nickname_move_and_swapped_birth_date() -> None:
    groups = _groups(
        [
            (
                "a",
                "1",
                "Robert",
                "Ashdown",
                BORN,
                "rob@example.org",
                "+447700900123",
                "M14 5AB",
                True,
            ),
            ("b", "2", "BOB", "ashdown", BORN, "rob@example.org", None, "LS6 2QT", True),
            ("c", "3", "Robert", "Ashdown", date(1984, 7, 3), None, "07700 900123", "m145ab", True),
        ]
    )
    assert groups["1"] == groups["2"] == groups["3"]


def test_twins_and_parent_child_and_household_are_kept_apart() -> None:
    email, phone, postcode = HOME
    groups = _groups(
        [
            ("a", "t1", "Ada", "Ashdown", BORN, email, phone, postcode, True),
            ("a", "t2", "Eli", "Ashdown", BORN, email, phone, postcode, True),  # twin
            ("b", "p1", "John", "Ashdown", date(1960, 5, 1), email, phone, postcode, True),
            ("b", "p2", "John", "Ashdown", date(1988, 9, 2), email, phone, postcode, True),
            ("c", "h1", "Mary", "Ashdown", None, email, phone, postcode, True),  # household
        ]
    )
    assert len(set(groups.values())) == 5


def test_no_consent_links_only_within_its_own_member() -> None:
    person = ("Nia", "Quell", BORN, "nia@example.org", "+447700900555", "M20 1AA")
    groups = _groups(
        [
            ("a", "1", *person, False),
            ("a", "2", *person, True),  # same member: linked
            ("b", "3", *person, True),  # other member: not with the no-consent record's person
        ]
    )
    assert groups["1"] == groups["2"] and groups["3"] != groups["1"]


def test_reviewer_decisions_win_over_the_model() -> None:
    rows: list[Row] = [
        ("a", "1", "Kit", "Corrow", BORN, "kit@example.org", None, "M15 6BB", True),
        ("b", "2", "Kit", "Corrow", BORN, "kit@example.org", None, "M15 6BB", True),
        ("a", "3", "Lux", "Brackley", None, None, None, None, True),
        ("b", "4", "Lux", "Brackley", None, None, None, None, True),
    ]
    decisions = pa.table(
        {
            "unique_id_l": ["a|1", "a|3"],
            "unique_id_r": ["b|2", "b|4"],
            "decision": ["reject", "accept"],
        }
    )
    groups = _groups(rows, decisions=decisions)
    assert groups["1"] != groups["2"]  # the model alone would link these
    assert groups["3"] == groups["4"]  # nothing to go on but the reviewer's word


def test_constrained_clustering_refuses_a_chain_through_a_weak_record() -> None:
    # 0 and 2 are twins (cannot link); 1 matches both. The stronger link wins.
    result = cluster(
        ["a", "a", "a"],
        [True, True, True],
        [Link(0, 1, 0.99, "probabilistic"), Link(1, 2, 0.97, "probabilistic")],
        [(0, 2)],
    )
    assert result.group[0] == result.group[1] != result.group[2]
    assert [why for _, why in result.refused] == ["cannot_link"]


def test_person_keys_survive_reruns_merges_and_splits() -> None:
    keys, changes = assign_keys([0, 0, 2], [None, None, None])
    assert keys[0] == keys[1] != keys[2] and keys[0].startswith("p_")
    assert sorted(c.change for c in changes) == ["created", "created"]
    # A new record joins an existing person: nobody is renamed.
    again, changes = assign_keys([0, 0, 2, 2], [keys[0], keys[1], keys[2], None])
    assert again[:3] == keys and again[3] == keys[2] and changes == []
    # Two people merge: the larger keeps its key, the other key is recorded as merged.
    merged, changes = assign_keys([0, 0, 0, 0], again)
    assert set(merged) == {keys[0]} or set(merged) == {keys[2]}
    assert [c.change for c in changes] == ["merged"]
    # A person splits: the larger part keeps the key, the other part gets a new one.
    split, changes = assign_keys([0, 0, 0, 3], [keys[0]] * 4)
    assert split[:3] == [keys[0]] * 3 and split[3] != keys[0]
    assert [(c.change, c.other_key) for c in changes] == [("split", keys[0])]
    # All of a person's records deleted: the key is retired.
    _, changes = assign_keys([0], [keys[0]], known_keys={keys[0], keys[2]})
    assert [(c.person_key, c.change) for c in changes] == [(keys[2], "retired")]


def test_a_record_without_an_id_stops_the_run_instead_of_vanishing() -> None:
    rows = _records([("a", "1", "Kit", "Corrow", BORN, None, None, None, True)])
    broken = rows.set_column(0, "unique_id", pa.array([None], pa.string()))
    with pytest.raises(ValueError, match="1 person record"):
        link_records(broken)
