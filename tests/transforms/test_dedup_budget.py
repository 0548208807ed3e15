"""The candidate-pair budget: oversized blocks are tightened or skipped, never silently.

Real normaliser, real DuckDB and the bundled Splink model; the huge blocks are made by hand
(many people sharing a postcode and a given name, a placeholder e-mail, a placeholder name
and birth date) and the budget is made tiny so that they exceed it.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from tests.transforms.test_dedup_incremental import INCREMENTAL, _keys, _network_rows, _write
from transforms.dedup.blocking import BlockingBudget, count_pairs
from transforms.dedup.link import LinkOutcome, link_records
from transforms.dedup.model import blocking_rule
from transforms.dedup.normalise import INPUT_COLUMNS, normalise_people
from transforms.linkage import link_people
from transforms.warehouse import DuckDBWarehouse

Row = tuple[str, str, str, str, date | None, str | None, str | None, str | None, bool]

# Other people, who must link as they always did, whatever happens to the crowd.
OTHERS: list[Row] = [
    ("a", "r1", "Robert", "Ashdown", date(1984, 3, 7), "rob@example.org", None, "M14 5AB", True),
    ("b", "r2", "Bob", "Ashdown", date(1984, 3, 7), "rob@example.org", None, "LS6 2QT", True),
    ("a", "p1", "Priya", "Okafor", date(1990, 11, 2), None, "+447700900456", "E8 1AA", True),
    ("c", "p2", "Priya", "Okafor", date(1990, 11, 2), None, "+447700900456", "E8 1AA", True),
    ("a", "w1", "Wen", "Lindqvist", date(1975, 1, 30), "wen@example.net", None, "B5 7RT", True),
]
CROWD_POSTCODE = "BD7 1QQ"
CROWD_GIVEN = "Zainab"
PLACEHOLDER_EMAIL = "noemail@example.org"
FAMILIES = ["Quayle", "Ruskin", "Treharne", "Umberfield", "Vasquez", "Wexley"]


def _crowd(size: int) -> list[Row]:
    """``size`` different people sharing one postcode and one given name (one big block)."""
    return [
        (
            "a",
            f"z{i}",
            CROWD_GIVEN,
            f"{FAMILIES[i % len(FAMILIES)]}{'x' * (i // len(FAMILIES))}",
            date(1950, 1, 1) + timedelta(days=397 * i),
            None,
            None,
            CROWD_POSTCODE,
            True,
        )
        for i in range(size)
    ]


def _table(rows: list[Row]) -> pa.Table:
    data = {name: [r[i] for r in rows] for i, name in enumerate(INPUT_COLUMNS)}
    return pa.table(
        {
            **{k: pa.array(v) for k, v in data.items() if k != "birth_date"},
            "birth_date": pa.array(data["birth_date"], pa.date32()),
        }
    )


def _link(rows: list[Row], budget: BlockingBudget) -> LinkOutcome:
    return link_records(normalise_people(_table(rows)), budget=budget)


def _groups(outcome: LinkOutcome) -> dict[str, int]:
    return dict(
        zip(outcome.links["unique_id"].to_pylist(), outcome.links["group"].to_pylist(), strict=True)
    )


def _partition(outcome: LinkOutcome) -> set[frozenset[str]]:
    members: dict[int, set[str]] = {}
    for uid, group in _groups(outcome).items():
        members.setdefault(group, set()).add(uid)
    return {frozenset(m) for m in members.values()}


def _assert_no_personal_value(text: str, rows: list[Row]) -> None:
    lowered = text.lower()
    for row in rows:
        for value in (row[2], row[3], row[5], row[6], row[7], row[4]):
            if value is None or value == "":
                continue
            shown = str(value).lower()
            assert shown not in lowered, f"{shown!r} appears in {text!r}"
            if isinstance(value, str) and " " in value:
                assert shown.replace(" ", "") not in lowered.replace(" ", "")


TINY = BlockingBudget(max_block_pairs=100, max_rule_pairs=10_000)


def test_huge_block_is_tightened_and_reported_without_personal_data() -> None:
    crowd = _crowd(60)  # one (postcode, given name) block of 60 records: 1,770 pairs
    rows = OTHERS + crowd
    outcome = _link(rows, TINY)

    by_rule = {w.rule: w for w in outcome.blocking_warnings}
    warning = by_rule["postcode + given_canonical"]
    assert warning.action == "tightened"
    assert warning.largest_block_records == 60 and warning.largest_block_pairs == 1770
    assert warning.blocks_over_budget == 1
    assert warning.refined_by[0] == "birth_year"
    assert warning.pairs_before == 1770 + 1  # the crowd, and Priya Okafor twice
    assert warning.pairs_after < 100
    assert warning.pairs_dropped == 1771 - warning.pairs_after
    message = warning.message()
    assert "postcode + given_canonical" in message and "60 records" in message
    assert "1,770 pairs" in message
    for w in outcome.blocking_warnings:
        _assert_no_personal_value(w.message() + repr(w.as_dict()), rows)

    groups = _groups(outcome)
    assert groups["a|r1"] == groups["b|r2"]  # Robert/Bob Ashdown at two members
    assert groups["a|p1"] == groups["c|p2"]
    assert groups["a|w1"] not in {groups["a|r1"], groups["a|p1"]}
    # The crowd are 60 different people and stay so.
    assert len({groups[f"a|z{i}"] for i in range(60)}) == 60

    # The others link exactly as they do without any budget.
    unlimited = _link(rows, BlockingBudget.unlimited())
    assert unlimited.blocking_warnings == ()
    others = {f"{r[0]}|{r[1]}" for r in OTHERS}
    assert {g & others for g in _partition(outcome)} - {frozenset()} == {
        g & others for g in _partition(unlimited)
    } - {frozenset()}


def test_placeholder_email_and_placeholder_person_are_budgeted() -> None:
    # A member that typed one placeholder e-mail for 50 different people, and 40 records of
    # an "Unknown Unknown" born on a default date: left to themselves, the e-mail rule and
    # the deterministic rule would pair each of them with every other.
    placeholder = [
        ("a", f"e{i}", f"Given{i}", f"Family{i}", date(1960, 1, 1) + timedelta(days=400 * i),
         PLACEHOLDER_EMAIL, None, None, True)
        for i in range(50)
    ]  # fmt: skip
    unknown = [
        ("b", f"u{i}", "Unknown", "Unknown", date(1900, 1, 1), None, None, None, True)
        for i in range(40)
    ]
    # An empty e-mail is no e-mail (normalised to null): it makes no block at all.
    empty = [
        ("c", f"x{i}", f"Other{i}", f"Person{i}", None, "", None, None, True) for i in range(30)
    ]
    rows = OTHERS + placeholder + unknown + empty
    outcome = _link(rows, TINY)
    by_rule = {w.rule: w for w in outcome.blocking_warnings}

    email = by_rule["email"]
    assert email.largest_block_records == 50
    assert email.pairs_before == 1225 + 1  # and Robert/Bob Ashdown's shared address
    assert email.action == "tightened" and email.refined_by == ("birth_year",)
    assert email.pairs_after == 0 or email.pairs_after <= 100

    deterministic = by_rule["given_name + family_name + birth_date"]
    assert deterministic.largest_block_records == 40
    assert deterministic.pairs_before == 780 + 1  # and Priya Okafor at two members
    # The deterministic rule is never split by other columns: the block is left out, the
    # rest of the rule kept.
    assert deterministic.action == "tightened" and deterministic.refined_by == ()
    assert deterministic.pairs_after == 1
    assert deterministic.blocks_dropped == 1 and deterministic.records_dropped == 40
    for w in outcome.blocking_warnings:
        _assert_no_personal_value(w.message(), rows)
        assert "noemail" not in w.message() and "1900" not in w.message()

    groups = _groups(outcome)
    assert groups["a|r1"] == groups["b|r2"] and groups["a|p1"] == groups["c|p2"]
    # Sharing a placeholder e-mail does not make 50 people one.
    assert len({groups[f"a|e{i}"] for i in range(50)}) == 50
    assert "email" not in {w.rule for w in _link(OTHERS + empty, TINY).blocking_warnings}


def test_rules_all_skipped_compare_nothing_rather_than_everything() -> None:
    # A budget of no pairs at all: every rule is skipped. Splink, given no rule, would
    # compare every record with every other; the linker must not ask it to.
    rows = OTHERS + _crowd(20)
    outcome = _link(rows, BlockingBudget(max_block_pairs=0, max_rule_pairs=0))
    assert outcome.blocking_warnings
    assert all(w.action == "skipped" and w.pairs_after == 0 for w in outcome.blocking_warnings)
    assert "scored_pairs" not in outcome.stats
    assert len(set(_groups(outcome).values())) == len(rows)


def test_rule_total_over_budget_keeps_the_small_blocks() -> None:
    # No single block is too large, but together they exceed the rule's budget: the largest
    # are split first, the small ones kept as they are.
    rows = OTHERS + _crowd(12)
    budget = BlockingBudget(max_block_pairs=None, max_rule_pairs=5)
    outcome = _link(rows, budget)
    warning = {w.rule: w for w in outcome.blocking_warnings}["postcode + given_canonical"]
    assert warning.pairs_before == 66 + 1 and warning.largest_block_records == 12
    assert warning.blocks_over_budget == 1  # the crowd's; Priya Okafor's pair is kept
    assert 1 <= warning.pairs_after <= 5
    groups = _groups(outcome)
    assert groups["a|r1"] == groups["b|r2"] and groups["a|p1"] == groups["c|p2"]


def test_rules_share_the_overall_budget_in_their_order() -> None:
    # Each rule alone is small; together they exceed ``max_pairs``: the first rules take
    # what they need, the later ones are left with nothing and skipped, with a warning.
    budget = BlockingBudget(max_block_pairs=None, max_rule_pairs=None, max_pairs=3)
    outcome = _link(OTHERS + _crowd(12), budget)
    by_rule = {w.rule: w for w in outcome.blocking_warnings}
    assert "given_name + family_name + birth_date" not in by_rule  # 1 pair: Priya Okafor
    assert "given_canonical + family_name + birth_year" not in by_rule  # 2 more: full
    assert by_rule["birth_date + family_name"].action == "skipped"
    assert by_rule["postcode + given_canonical"].action == "skipped"
    assert sum(w.pairs_after for w in outcome.blocking_warnings) == 0
    groups = _groups(outcome)
    assert groups["a|r1"] == groups["b|r2"] and groups["a|p1"] == groups["c|p2"]


def test_a_varied_network_is_linked_exactly_as_without_a_budget(tmp_path: Path) -> None:
    rows = _network_rows(tmp_path, 1500, seed=11)
    records = normalise_people(_table(rows))
    budgeted = link_records(records, budget=BlockingBudget())
    unlimited = link_records(records, budget=BlockingBudget.unlimited())
    assert budgeted.blocking_warnings == ()
    assert budgeted.model_version == unlimited.model_version
    assert budgeted.links.equals(unlimited.links)
    assert budgeted.review.equals(unlimited.review)
    assert budgeted.stats == unlimited.stats


def test_pair_counts_agree_with_splink() -> None:
    # The budget's count (a GROUP BY, consent rule included) against Splink's own count of
    # the pairs the rule makes, on records of three members, some without consent.
    from splink.blocking_analysis import count_comparisons_from_blocking_rules

    from transforms.dedup.model import db_api_for

    rows = [
        (org, f"{org}{i}", CROWD_GIVEN if i % 3 else "Amara", f"Fam{i}", None, None, None,
         CROWD_POSTCODE if i % 4 else "LS6 2QT", bool(i % 2))
        for org in ("a", "b", "c")
        for i in range(23)
    ]  # fmt: skip
    records = normalise_people(_table(rows))
    con = duckdb.connect()
    con.register("people", records)
    columns = ("postcode", "given_canonical")
    ours, largest, _ = count_pairs(con, "people", columns)
    db_api = db_api_for(con)
    theirs = count_comparisons_from_blocking_rules(
        db_api.register("people"),
        blocking_rules=blocking_rule(columns),
        link_type="dedupe_only",
        record_sample_proportion=1.0,
    )
    assert ours == theirs[0]["cumulative_comparison_count"] > 0
    assert largest < ours


def test_budget_is_read_from_the_environment() -> None:
    assert BlockingBudget.from_env({}) == BlockingBudget()
    budget = BlockingBudget.from_env(
        {"HUB_LINK_MAX_BLOCK_PAIRS": "2_000", "HUB_LINK_MAX_RULE_PAIRS": "0"}
    )
    assert budget == BlockingBudget(max_block_pairs=2000, max_rule_pairs=None)
    with pytest.raises(ValueError, match="HUB_LINK_MAX_RULE_PAIRS"):
        BlockingBudget.from_env({"HUB_LINK_MAX_RULE_PAIRS": "lots"})


def test_link_people_reports_and_keeps_the_budget_incrementally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_LINK_MAX_BLOCK_PAIRS", "100")
    monkeypatch.setenv("HUB_LINK_MAX_RULE_PAIRS", "10000")
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    crowd = _crowd(60)
    _write(warehouse, OTHERS + crowd)
    first = link_people(warehouse, INCREMENTAL)
    assert first.mode == "full"
    assert "postcode + given_canonical" in {w.rule for w in first.blocking_warnings}
    keys = _keys(warehouse)
    assert keys["a|r1"] == keys["b|r2"]

    # A new record in the crowd's block: scored incrementally, against everyone, under the
    # same budget (counted on the whole network, so the block is still too large).
    added = ("d", "n1", "Robert", "Ashdown", date(1984, 3, 7), None, None, "M14 5AB", True)
    newcomer = ("a", "z999", CROWD_GIVEN, "Newfamily", date(2003, 5, 5), None, None,
                CROWD_POSTCODE, True)  # fmt: skip
    _write(warehouse, OTHERS + crowd + [added, newcomer])
    second = link_people(warehouse, INCREMENTAL)
    assert second.mode == "incremental"
    warning = {w.rule: w for w in second.blocking_warnings}["postcode + given_canonical"]
    assert warning.largest_block_records == 61
    after = _keys(warehouse)
    assert after["d|n1"] == after["a|r1"] == keys["a|r1"]
    assert after["a|z999"] not in {after[f"a|z{i}"] for i in range(60)}
    assert {k: v for k, v in after.items() if k in keys} == keys
