"""Disclosure control: primary and secondary suppression on the two count tables."""

from __future__ import annotations

import random
import time
from typing import Any

import pyarrow as pa
import pytest

from transforms.disclosure import (
    SPECS,
    DisclosureSpec,
    GroupTotal,
    RowSum,
    apply_disclosure_control,
    relation_violations,
    suppress,
)
from transforms.published_schema import PUBLISHED_SCHEMAS

REACH_MEASURES = ("people", "served_by_1", "served_by_2", "served_by_3_plus")
OUTCOME_MEASURES = ("people_engaged", "people_achieving", "engagements", "deliveries")


def _reach(rows: dict[str, tuple[int, int, int]], period: str = "2025-Q1") -> list[dict]:
    """cross_org_reach rows from area -> (by_1, by_2, by_3_plus), with the 'all' row added."""
    out = []
    total = [0, 0, 0]
    for area, parts in rows.items():
        out.append(
            {
                "period": period,
                "area": area,
                "people": sum(parts),
                "served_by_1": parts[0],
                "served_by_2": parts[1],
                "served_by_3_plus": parts[2],
            }
        )
        total = [a + b for a, b in zip(total, parts, strict=True)]
    out.append(
        {
            "period": period,
            "area": "all",
            "people": sum(total),
            "served_by_1": total[0],
            "served_by_2": total[1],
            "served_by_3_plus": total[2],
        }
    )
    return out


def _outcomes(areas: dict[str, tuple[int, int, int, int]], code: str = "all") -> list[dict]:
    """outcomes_summary rows for one outcome code: area -> the four measures, plus 'all'."""
    rows = []
    for area, values in {
        **areas,
        "all": tuple(sum(v[i] for v in areas.values()) for i in range(4)),
    }.items():
        eng, dlv = (values[2], values[3]) if code == "all" else (None, None)
        rows.append(
            {
                "period": "2025-Q1",
                "area": area,
                "outcome_area": "housing",
                "outcome_code": code,
                "organisations": 2,
                "people_engaged": values[0],
                "people_achieving": values[1],
                "engagements": eng,
                "deliveries": dlv,
            }
        )
    return rows


def _by_area(table: pa.Table, key: str = "area") -> dict[Any, dict]:
    return {row[key]: row for row in table.to_pylist()}


def test_primary_suppression_hides_small_counts_and_zero() -> None:
    table = pa.Table.from_pylist(_outcomes({"M14": (12, 0, 9, 7)}))
    out = _by_area(apply_disclosure_control("outcomes_summary", table))
    m14 = out["M14"]
    assert m14["people_engaged"] == 12 and not m14["people_engaged_suppressed"]
    assert m14["people_achieving"] is None and m14["people_achieving_suppressed"]  # 0 < 5
    assert m14["engagements"] == 9 and m14["deliveries"] == 7


def test_threshold_is_configurable() -> None:
    table = pa.Table.from_pylist(_outcomes({"M14": (12, 6, 9, 7)}))
    out = _by_area(apply_disclosure_control("outcomes_summary", table, threshold=10))
    assert out["M14"]["people_engaged"] == 12
    assert out["M14"]["people_achieving"] is None and out["M14"]["engagements"] is None


def test_not_applicable_nulls_are_not_suppressed() -> None:
    table = pa.Table.from_pylist(_outcomes({"M14": (12, 8, 0, 0)}, code="tenancy_sustained"))
    out = _by_area(apply_disclosure_control("outcomes_summary", table))
    for row in out.values():
        assert row["engagements"] is None and row["engagements_suppressed"] is False
        assert row["deliveries"] is None and row["deliveries_suppressed"] is False
        assert row["people_engaged"] == row["people_engaged"]  # shown, untouched


def test_secondary_suppression_with_one_suppressed_part() -> None:
    # M16's 3 people would be all - M14 - M15 = 30 - 20 - 7: the smallest other part (M15)
    # is hidden too.
    table = pa.Table.from_pylist(
        _outcomes({"M14": (20, 10, 20, 20), "M15": (7, 6, 20, 20), "M16": (3, 0, 20, 20)})
    )
    out = _by_area(apply_disclosure_control("outcomes_summary", table))
    assert out["M16"]["people_engaged"] is None and out["M16"]["people_engaged_suppressed"]
    assert out["M15"]["people_engaged"] is None and out["M15"]["people_engaged_suppressed"]
    assert out["M14"]["people_engaged"] == 20 and out["all"]["people_engaged"] == 30
    # people_achieving: M16's 0 hidden, M15's 6 is the smallest visible part.
    assert out["M15"]["people_achieving"] is None and out["M14"]["people_achieving"] == 10
    assert [out[a]["engagements"] for a in ("M14", "M15", "M16", "all")] == [20, 20, 20, 60]


def test_two_suppressed_zeros_are_not_enough() -> None:
    # Hidden 0 and 0 with total 20 = 20 visible would reveal both zeros.
    table = pa.Table.from_pylist(
        _outcomes({"M14": (20, 20, 8, 8), "M15": (0, 0, 0, 0), "M16": (0, 0, 0, 0)})
    )
    out = _by_area(apply_disclosure_control("outcomes_summary", table))
    for measure in OUTCOME_MEASURES:
        assert out["M15"][measure] is None and out["M16"][measure] is None
        assert out["M14"][measure] is None, measure  # hidden so the hidden sum reaches 5
        assert out["all"][measure] is not None


def test_suppressed_pair_summing_to_threshold_is_enough() -> None:
    table = pa.Table.from_pylist(
        _outcomes({"M14": (20, 20, 8, 8), "M15": (3, 3, 3, 3), "M16": (2, 2, 2, 2)})
    )
    out = _by_area(apply_disclosure_control("outcomes_summary", table))
    assert out["M14"]["people_engaged"] == 20 and out["all"]["people_engaged"] == 25


def test_cross_org_reach_two_dimensional_interaction() -> None:
    # The end-to-end scenario's figures: all (10, 7, 3, 0), M14 (8, 5, 3, 0), M15 (2, 2, 0, 0).
    table = pa.Table.from_pylist(_reach({"M14": (5, 3, 0), "M15": (2, 0, 0)}))
    result = suppress(table, SPECS["cross_org_reach"])
    out = _by_area(result.table)
    # Row sums: the hidden 3 and 0 sum to 3 < 5, so served_by_1 goes too (all and M14).
    # Area totals: M15's hidden 2 people would be 10 - 8, so M14's people go too.
    assert [out["all"][m] for m in REACH_MEASURES] == [10, None, None, None]
    assert [out["M14"][m] for m in REACH_MEASURES] == [None] * 4
    assert [out["M15"][m] for m in REACH_MEASURES] == [None] * 4
    assert result.primary == 8 and result.secondary == 3
    assert result.inconsistent_relations == 0
    assert relation_violations(result.table, SPECS["cross_org_reach"], table, threshold=5) == []


def test_cross_org_reach_secondary_cascades_across_relations() -> None:
    # served_by_3_plus is small in M14 only; hiding it forces a row partner, which in turn
    # becomes a single hidden part of its column and forces a column partner.
    table = pa.Table.from_pylist(
        _reach({"M14": (30, 9, 2), "M15": (40, 12, 9), "M16": (50, 20, 11)})
    )
    result = suppress(table, SPECS["cross_org_reach"])
    out = _by_area(result.table)
    assert out["M14"]["served_by_3_plus"] is None
    assert out["M14"]["served_by_2"] is None  # smallest visible part of M14's row
    assert out["M15"]["served_by_3_plus"] is None  # column partner for M14's 2
    assert out["M15"]["served_by_2"] is None  # column partner for M14's 9 ... and row
    assert relation_violations(result.table, SPECS["cross_org_reach"], table, threshold=5) == []


def test_result_does_not_depend_on_row_order() -> None:
    rows = _reach({"M14": (5, 3, 0), "M15": (2, 0, 0), "M16": (9, 4, 1), "unknown": (6, 0, 0)})
    forward = suppress(pa.Table.from_pylist(rows), SPECS["cross_org_reach"]).table
    backward = suppress(pa.Table.from_pylist(rows[::-1]), SPECS["cross_org_reach"]).table
    assert _by_area(forward) == _by_area(backward)


def test_output_conforms_to_published_schema() -> None:
    table = pa.Table.from_pylist(_reach({"M14": (5, 3, 0)}))
    out = apply_disclosure_control("cross_org_reach", table)
    assert out.schema == PUBLISHED_SCHEMAS["cross_org_reach"].arrow_schema()
    assert [n for n in out.column_names if n.endswith("_suppressed")] == [
        "people_suppressed",
        "served_by_1_suppressed",
        "served_by_2_suppressed",
        "served_by_3_plus_suppressed",
    ]


def test_duplicate_keys_and_negative_counts_are_rejected() -> None:
    rows = _reach({"M14": (5, 3, 0)})
    with pytest.raises(ValueError, match="duplicate key"):
        suppress(pa.Table.from_pylist(rows + rows[:1]), SPECS["cross_org_reach"])
    rows[0]["served_by_1"] = -1
    with pytest.raises(ValueError, match="negative"):
        suppress(pa.Table.from_pylist(rows), SPECS["cross_org_reach"])


def test_generic_spec_on_another_table() -> None:
    spec = DisclosureSpec(
        key=("region",),
        measures=("total", "a", "b"),
        relations=(GroupTotal("region", "all", ("total", "a", "b")), RowSum("total", ("a", "b"))),
    )
    table = pa.table(
        {"region": ["x", "y", "all"], "total": [20, 20, 40], "a": [18, 16, 34], "b": [2, 4, 6]}
    )
    result = suppress(table, spec)
    assert relation_violations(result.table, spec, table, threshold=5) == []
    assert result.table.column("b").to_pylist() == [None, None, 6]


def _random_reach(rng: random.Random) -> pa.Table:
    rows = []
    for period in ("2024-Q4", "2025-Q1")[: rng.randint(1, 2)]:
        areas = [f"M{n}" for n in range(rng.randint(1, 6))] + ["unknown"] * rng.randint(0, 1)
        small = rng.random() < 0.5
        rows += _reach(
            {
                a: tuple(
                    rng.choice([0, 0, 1, 2, 3, 4, 5, 6, 9, 15, 40]) if small else rng.randint(0, 30)
                    for _ in range(3)
                )
                for a in areas
            },
            period=period,
        )
    return pa.Table.from_pylist(rows)


def _random_outcomes(rng: random.Random) -> pa.Table:
    rows = []
    areas = [f"M{n}" for n in range(rng.randint(1, 5))]
    for code in ("all", "tenancy_sustained", "debt_reduced")[: rng.randint(1, 3)]:
        values = {}
        for a in areas:
            engaged = rng.choice([0, 1, 2, 3, 4, 5, 7, 12, 30])
            values[a] = (
                engaged,
                rng.randint(0, engaged),
                rng.choice([0, 2, 6, 20]),
                rng.choice([0, 1, 4, 5, 50]),
            )
        rows += _outcomes(values, code=code)
    return pa.Table.from_pylist(rows)


@pytest.mark.parametrize("table_name", ["cross_org_reach", "outcomes_summary"])
def test_adversarial_random_tables_leave_nothing_recoverable(table_name: str) -> None:
    rng = random.Random(20250101)
    spec = SPECS[table_name]
    make = _random_reach if table_name == "cross_org_reach" else _random_outcomes
    for case in range(400):
        threshold = rng.choice([3, 5, 5, 10])
        original = make(rng)
        result = suppress(original, spec, threshold=threshold)
        assert result.inconsistent_relations == 0
        problems = relation_violations(result.table, spec, original, threshold=threshold)
        assert problems == [], (case, threshold, original.to_pylist(), problems)


def test_tens_of_thousands_of_rows_are_fast() -> None:
    rng = random.Random(7)
    rows = []
    for q in range(8):
        period = f"{2020 + q // 4}-Q{q % 4 + 1}"
        rows += _reach(
            {
                f"A{n}": (rng.randint(0, 20), rng.randint(0, 6), rng.randint(0, 3))
                for n in range(2500)
            },
            period=period,
        )
    table = pa.Table.from_pylist(rows)
    started = time.perf_counter()
    result = suppress(table, SPECS["cross_org_reach"])
    assert time.perf_counter() - started < 10
    assert result.table.num_rows == 20008
    assert relation_violations(result.table, SPECS["cross_org_reach"], table, threshold=5) == []


def test_violations_name_cells_never_their_values() -> None:
    """What the blocking check reports (and Dagster stores as metadata) names the cells and
    the rule, never a hidden or small value."""
    original = pa.Table.from_pylist(
        [
            {
                "period": "2025-Q1",
                "area": "all",
                "people": 9,
                "served_by_1": 7,
                "served_by_2": 2,
                "served_by_3_plus": 0,
            },
        ]
    )
    leaky = original.append_column("people_suppressed", pa.array([False]))
    for m in ("served_by_1", "served_by_2", "served_by_3_plus"):
        leaky = leaky.append_column(f"{m}_suppressed", pa.array([m == "served_by_2"]))
    leaky = leaky.set_column(
        leaky.column_names.index("served_by_2"), "served_by_2", pa.array([None], pa.int64())
    )
    problems = relation_violations(leaky, SPECS["cross_org_reach"], original, threshold=5)
    assert problems, "one hidden part of a shown total is recoverable"
    said = " ".join(problems)
    assert "recoverable from total" in said and "below 5" in said
    assert "[2]" not in said and " 2 " not in said.replace("2025", "")
