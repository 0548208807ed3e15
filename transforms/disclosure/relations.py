"""Every relation a reader of a release can use to narrow down a withheld count, written once.

Why one place: the audit that attacks each release, the suppression that must survive that
audit, the attack tests and the documentation all need the same list. A relation missing
here is a relation the audit does not try, so each is stated as a reader would know it from
the published documentation alone, and each must hold for every true set of counts (the
tests check that the true values satisfy every constraint on the demo and on generated
networks).

Relations are linear constraints over cells (``transforms.disclosure.cells``); a cell that
is shown is a constant, a withheld one an unknown non-negative integer. Where a relation is
"if one count is above 0 then so is another", it is written with ``bound``, a number no
count can exceed, as ``a <= bound * b``.

Not used, because they hold only for particular data or give nothing beyond the above:
people served by two or more members against the organisations counts of the outcome
areas; members' records loaded against a quarter's engagements, and organisations against
the member count (a frozen quarter repeats counts made on older data, when the members
were not the same, so neither need hold); and structural facts that follow from the member
count alone (with two members nobody is served by three), which describe the network, not
anyone in it.

Across releases (``transforms.disclosure.history``), a revised quarter's cells are tied to
the cells of every earlier version of it by a change cell (``new - old``), which is what a
reader comparing the two releases computes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from transforms.disclosure.cells import Cells

# Areas every quarter has, whatever the data: they never say that anyone was counted.
FIXED_AREAS = ("all", "other", "unknown")
ALL = "all"

Layout = Literal["grid", "sparse"]

RULES: dict[str, str] = {
    "area_total": "A count on an 'all' area row is the sum of the same count over the "
    "quarter's other areas (each person has one area).",
    "code_bounds": "On an outcome area's 'all' row, people achieving lie between the largest "
    "people achieving of its codes and their sum (a person can achieve several codes); people "
    "engaged and organisations are at least those of any code.",
    "achieving_within_engaged": "People achieving never exceed people engaged on the same row.",
    "engaged_has_activity": "People engaged with an outcome area are at most its engagements "
    "plus its deliveries plus the people engaged with its codes.",
    "activity_has_people": "An outcome area with an engagement or a delivery has someone engaged.",
    "organisations_serve_people": "Organisations are 0 exactly when nobody is counted on the row.",
    "reach_row_sum": "In cross_org_reach, people = served_by_1 + served_by_2 + served_by_3_plus.",
    "reach_covers_outcome_areas": "People served in a quarter and area are at least the "
    "people engaged with any one outcome area there, and at most their sum.",
    "named_district": "A quarter names a postcode district only when at least the threshold "
    "of people from it were counted (smaller districts are counted in 'other').",
    "row_exists": "(releases before the full grid) A row is present only when someone is "
    "counted in it.",
    "revision_change": "A revised quarter's count minus the same count in an earlier release "
    "is the change between them.",
}


@dataclass(frozen=True)
class Constraint:
    """``lower <= sum(coefficient * cell) <= upper`` (bounds may be infinite)."""

    terms: tuple[tuple[int, int], ...]
    lower: float
    upper: float
    rule: str
    # For "if any of the others is above 0 then this cell is": the cell (the audit treats
    # these rows specially, as a linear program cannot state them exactly).
    then: int | None = None


class _Builder:
    def __init__(self) -> None:
        self.out: list[Constraint] = []

    def add(
        self,
        rule: str,
        terms: Iterable[tuple[int | None, int]],
        lower: float = float("-inf"),
        upper: float = float("inf"),
        then: int | None = None,
    ) -> None:
        merged: dict[int, int] = defaultdict(int)
        for cell, coefficient in terms:
            if cell is not None:
                merged[cell] += coefficient
        kept = tuple((c, k) for c, k in sorted(merged.items()) if k != 0)
        if kept or lower > 0 or upper < 0:
            self.out.append(Constraint(kept, lower, upper, rule, then))

    def equal(self, rule: str, total: int | None, parts: Iterable[int | None]) -> None:
        self.add(rule, [(total, 1), *((p, -1) for p in parts)], 0, 0)

    def at_least(self, rule: str, big: int | None, small: int | None) -> None:
        """big >= small."""
        self.add(rule, [(big, 1), (small, -1)], 0)

    def at_most_sum(self, rule: str, total: int | None, parts: Iterable[int | None]) -> None:
        """total <= sum(parts)."""
        self.add(rule, [(total, 1), *((p, -1) for p in parts)], upper=0)

    def implies(self, rule: str, then: int | None, when: Iterable[int | None], bound: int) -> None:
        """sum(when) > 0 implies then > 0, as sum(when) <= bound * then."""
        if then is None:
            self.add(rule, [(w, 1) for w in when], upper=0)
        else:
            self.add(rule, [*((w, 1) for w in when), (then, -bound)], upper=0, then=then)


def reader_relations(
    cells: Cells, *, threshold: int, bound: int, layout: Layout = "grid"
) -> list[Constraint]:
    """The constraints a reader of the release in ``cells`` can write down.

    ``layout`` is how rows come to exist: ``grid`` (every quarter shows every area it names
    times every outcome area and code, and names a district only with at least ``threshold``
    people) or ``sparse`` (round-one releases: a row only where someone is counted).
    ``bound`` must be at least every true count.
    """
    b = _Builder()
    outcomes = cells.rows.get("outcomes_summary", {})
    reach = cells.rows.get("cross_org_reach", {})

    def o(key: tuple[Any, ...], measure: str) -> int | None:
        return cells.at("outcomes_summary", key, measure)

    def r(key: tuple[Any, ...], measure: str) -> int | None:
        return cells.at("cross_org_reach", key, measure)

    # Group the outcome rows three ways.
    by_area: dict[tuple[Any, ...], list[tuple[Any, ...]]] = defaultdict(list)  # (p, oa, c)
    by_code: dict[tuple[Any, ...], list[tuple[Any, ...]]] = defaultdict(list)  # (p, a, oa)
    by_place: dict[tuple[Any, ...], list[tuple[Any, ...]]] = defaultdict(list)  # (p, a)
    for key in outcomes:
        period, area, outcome_area, code = key
        by_area[(period, outcome_area, code)].append(key)
        by_code[(period, area, outcome_area)].append(key)
        if code == ALL:
            by_place[(period, area)].append(key)

    for (period, outcome_area, code), keys in by_area.items():
        total = (period, ALL, outcome_area, code)
        if total not in outcomes:
            continue
        parts = [k for k in keys if k[1] != ALL]
        for m in ("people_engaged", "people_achieving", "engagements", "deliveries"):
            if o(total, m) is not None:
                b.equal("area_total", o(total, m), [o(k, m) for k in parts])

    for (period, area, outcome_area), keys in by_code.items():
        whole = (period, area, outcome_area, ALL)
        codes = [k for k in keys if k[3] != ALL]
        if whole in outcomes:
            for k in codes:
                for m in ("people_achieving", "people_engaged", "organisations"):
                    b.at_least("code_bounds", o(whole, m), o(k, m))
            b.at_most_sum(
                "code_bounds",
                o(whole, "people_achieving"),
                [o(k, "people_achieving") for k in codes],
            )
            b.add(
                "engaged_has_activity",
                [
                    (o(whole, "people_engaged"), 1),
                    (o(whole, "engagements"), -1),
                    (o(whole, "deliveries"), -1),
                    *((o(k, "people_engaged"), -1) for k in codes),
                ],
                upper=0,
            )
            b.implies(
                "activity_has_people",
                o(whole, "people_engaged"),
                [o(whole, "engagements"), o(whole, "deliveries")],
                bound,
            )

    for key in outcomes:
        b.at_least("achieving_within_engaged", o(key, "people_engaged"), o(key, "people_achieving"))
        orgs, engaged = o(key, "organisations"), o(key, "people_engaged")
        if orgs is not None:
            b.implies("organisations_serve_people", engaged, [orgs], bound)
            b.implies("organisations_serve_people", orgs, [engaged], bound)
        if layout == "sparse":
            b.add("row_exists", [(engaged, 1)], lower=1)

    for key in reach:
        b.equal(
            "reach_row_sum",
            r(key, "people"),
            [r(key, m) for m in ("served_by_1", "served_by_2", "served_by_3_plus")],
        )
        period, area = key
        if layout == "sparse":
            b.add("row_exists", [(r(key, "people"), 1)], lower=1)
        elif area not in FIXED_AREAS:
            b.add("named_district", [(r(key, "people"), 1)], lower=threshold)
        wholes = by_place.get((period, area), [])
        for k in wholes:
            b.at_least("reach_covers_outcome_areas", r(key, "people"), o(k, "people_engaged"))
        b.at_most_sum(
            "reach_covers_outcome_areas",
            r(key, "people"),
            [o(k, "people_engaged") for k in wholes],
        )

    # Reach 'all' rows add up over areas, like the outcome rows.
    periods: dict[Any, list[tuple[Any, ...]]] = defaultdict(list)
    for key in reach:
        periods[key[0]].append(key)
    for period, keys in periods.items():
        total = (period, ALL)
        if total not in reach:
            continue
        parts = [k for k in keys if k[1] != ALL]
        for m in ("people", "served_by_1", "served_by_2", "served_by_3_plus"):
            b.equal("area_total", r(total, m), [r(k, m) for k in parts])

    return b.out


def change_relations(changes: Iterable[tuple[int, int, int]]) -> list[Constraint]:
    """``change = current - earlier`` for each (change, current, earlier) cell triple."""
    b = _Builder()
    for change, current, earlier in changes:
        b.add("revision_change", [(change, 1), (current, -1), (earlier, 1)], 0, 0)
    return b.out


def check_truth(cells: Cells, constraints: list[Constraint]) -> list[str]:
    """Constraints the true values break (names of rules, for tests: each must be empty)."""
    broken: list[str] = []
    for con in constraints:
        if any(cells.truth[c] is None for c, _ in con.terms):
            continue
        total = sum(k * (cells.truth[c] or 0) for c, k in con.terms)
        if not con.lower <= total <= con.upper:
            cells_named = ", ".join(cells.refs[c].label() for c, _ in con.terms[:4])
            broken.append(f"{con.rule}: {cells_named}")
    return broken
