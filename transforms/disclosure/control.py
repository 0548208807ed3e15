"""Disclosure control of a whole release: withhold as little as possible so that the audit
(``transforms.disclosure.audit``) cannot narrow any withheld count down.

Steps, each for a reason:

1. **Primary suppression.** Every count of people, engagements, deliveries or records below
   the threshold is withheld, 0 included (a 0 says "nobody here achieved").
   ``organisations`` is not itself a count of people, but whether it is 0 says whether
   anyone was counted, so it is withheld wherever ``people_engaged`` on its row is.
2. **First pass over totals.** For each total = sum-of-parts relation (area totals, the
   reach row sum) whose total is shown, the withheld parts must be none, or at least two
   summing to at least the threshold; otherwise the smallest shown part (or the total) is
   withheld too. This cheap rule settles most cells before any solver runs.
3. **Audit and extend.** The audit bounds every withheld cell with an integer program over
   every relation a reader can use. For each cell it can still narrow down, the nearest
   shown cell linked to it by a relation is withheld as well, the smallest first (small
   cells before large ones, so the least is lost), and only the failing and newly withheld
   cells are audited again: withholding more only ever widens other cells' ranges, so a
   cell that passed keeps passing, and the loop ends.

The result reports the information lost per table (share of cells and of people withheld).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from transforms.disclosure.audit import AuditResult, audit, audit_bound, judged
from transforms.disclosure.cells import CONTROLLED_TABLES, Cells
from transforms.disclosure.relations import (
    Constraint,
    Layout,
    change_relations,
    reader_relations,
)

DEFAULT_THRESHOLD = 5

# Measures that are not audited on their own: their range is bounded by the member count,
# not by people, and they are withheld to protect the people counts beside them.
COMPANIONS = {("outcomes_summary", "organisations"): "people_engaged"}
# The measure whose withheld share is reported as "people hidden", per table.
PEOPLE_MEASURE = {"outcomes_summary": "people_engaged", "cross_org_reach": "people"}
_FIRST_PASS_RULES = {"area_total", "reach_row_sum"}


class DisclosureError(Exception):
    """Disclosure control could not make the release safe (names cells, never values)."""


@dataclass(frozen=True)
class TableLoss:
    """What disclosure control withheld in one table."""

    cells: int
    withheld: int
    primary: int
    secondary: int
    people_withheld_share: float | None  # of the table's people count, whole per cent

    @property
    def withheld_share(self) -> float:
        return round(self.withheld / self.cells, 3) if self.cells else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "cells": self.cells,
            "withheldCells": self.withheld,
            "withheldShare": self.withheld_share,
            "primary": self.primary,
            "secondary": self.secondary,
            "peopleWithheldShare": self.people_withheld_share,
        }


@dataclass
class ControlResult:
    """The controlled tables, the final audit and the information lost."""

    tables: dict[str, pa.Table]
    cells: Cells
    constraints: list[Constraint]
    audit: AuditResult
    loss: dict[str, TableLoss]
    rounds: int
    audited_cells: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def audited(cells: Cells, cell: int) -> bool:
    """Whether ``cell`` is judged by the audit (companion measures are not)."""
    ref = cells.refs[cell]
    return (ref.table, ref.measure) not in COMPANIONS


def _hide_companions(cells: Cells) -> list[int]:
    newly: list[int] = []
    for (table, measure), anchor in COMPANIONS.items():
        for measures in cells.rows.get(table, {}).values():
            c, a = measures.get(measure), measures.get(anchor)
            if (
                c is not None
                and a is not None
                and cells.hidden[a]
                and not cells.hidden[c]
                and not cells.fixed[c]
            ):
                cells.hide(c)
                newly.append(c)
    return newly


def _rank(cells: Cells) -> list[int]:
    """Each cell's position in key order: the tie-break that makes results order-free."""
    order = sorted(
        range(len(cells)),
        key=lambda c: (
            cells.refs[c].table,
            tuple((v is None, str(v)) for v in cells.refs[c].key),
            cells.refs[c].measure,
        ),
    )
    rank = [0] * len(cells)
    for position, c in enumerate(order):
        rank[c] = position
    return rank


def _first_pass(
    cells: Cells, constraints: list[Constraint], threshold: int, rank: list[int]
) -> None:
    sums: list[tuple[int, list[int]]] = []
    for con in constraints:
        if con.rule not in _FIRST_PASS_RULES:
            continue
        totals = [c for c, k in con.terms if k == 1]
        parts = [c for c, k in con.terms if k == -1]
        if len(totals) == 1:
            sums.append((totals[0], parts))
    touching: dict[int, list[int]] = defaultdict(list)
    for i, (total, parts) in enumerate(sums):
        touching[total].append(i)
        for p in parts:
            touching[p].append(i)
    queue = deque(range(len(sums)))
    queued = [True] * len(sums)
    while queue:
        i = queue.popleft()
        queued[i] = False
        total, parts = sums[i]
        while not cells.hidden[total]:
            withheld = [p for p in parts if cells.hidden[p]]
            if not withheld or (
                len(withheld) >= 2 and sum(cells.truth[p] or 0 for p in withheld) >= threshold
            ):
                break
            shown = [p for p in parts if not cells.hidden[p]]
            cell = min(shown, key=lambda p: (cells.truth[p] or 0, rank[p])) if shown else total
            cells.hide(cell)
            for k in touching[cell]:
                if k != i and not queued[k]:
                    queued[k] = True
                    queue.append(k)


def _neighbours(constraints: list[Constraint], n: int) -> list[list[int]]:
    linked: list[set[int]] = [set() for _ in range(n)]
    for con in constraints:
        members = [c for c, _ in con.terms]
        for c in members:
            linked[c].update(members)
    return [sorted(s) for s in linked]


def _nearest_shown(cells: Cells, start: int, links: list[list[int]], rank: list[int]) -> int | None:
    """The smallest shown cell at the least relation-distance from ``start``."""
    seen = {start}
    frontier = [start]
    while frontier:
        ring: list[int] = []
        for c in frontier:
            for d in links[c]:
                if d not in seen:
                    seen.add(d)
                    ring.append(d)
        shown = [d for d in ring if not cells.hidden[d] and not cells.fixed[d]]
        if shown:
            return min(shown, key=lambda d: (cells.truth[d] or 0, rank[d]))
        frontier = ring
    return None


@dataclass(frozen=True)
class EarlierRelease:
    """An earlier release's values of quarters now being published again (a revision): what
    a reader already holds. ``truth`` (the counts it was made from) is known to the hub's own
    audit and unknown to a reader."""

    tag: str
    tables: Mapping[str, pa.Table]
    truth: Mapping[str, pa.Table] | None
    periods: tuple[str, ...]


def _with_history(cells: Cells, history: Sequence[EarlierRelease]) -> list[tuple[int, int, int]]:
    changes: list[tuple[int, int, int]] = []
    for earlier in history:
        changes += cells.add_release(earlier.tables, earlier.truth, earlier.tag, earlier.periods)
    return changes


def _targets(cells: Cells, threshold: int) -> list[int]:
    return [
        c
        for c in range(len(cells))
        if (cells.role[c] == "change" and judged(cells, c, threshold) and audited(cells, c))
        or (cells.hidden[c] and audited(cells, c) and not cells.fixed[c])
    ]


def control_release(
    counts: Mapping[str, pa.Table],
    *,
    threshold: int = DEFAULT_THRESHOLD,
    layout: Layout = "grid",
    history: Sequence[EarlierRelease] = (),
    max_rounds: int = 1000,
) -> ControlResult:
    """Disclosure-control the count tables of a release (``counts``: name -> uncontrolled
    table) and return them conformed to their published schemas.

    ``history``: earlier releases of quarters ``counts`` revises. Their cells cannot be
    withheld any more; the change of each count since is what a reader holding both
    releases computes, and a small change (a few people added or removed) must not be
    told from no change. Raises ``DisclosureError`` (naming the cells) when no further
    withholding can achieve that: the revision is refused.
    """
    if threshold < 1:
        raise ValueError(f"disclosure threshold must be at least 1, got {threshold}")
    cells = Cells.from_counts(counts)
    changes = _with_history(cells, history)
    bound = audit_bound(cells, threshold)
    constraints = reader_relations(cells, threshold=threshold, bound=bound, layout=layout)
    constraints += change_relations(changes)
    rank = _rank(cells)

    for c in range(len(cells)):
        if (
            cells.role[c] == "count"
            and not cells.fixed[c]
            and audited(cells, c)
            and (cells.truth[c] or 0) < threshold
        ):
            cells.hide(c)
    primary = [h and not f for h, f in zip(cells.hidden, cells.fixed, strict=True)]
    _hide_companions(cells)
    _first_pass(cells, constraints, threshold, rank)
    _hide_companions(cells)

    links = _neighbours(constraints, len(cells))
    targets = _targets(cells, threshold)
    audited_cells = len(targets)
    total = AuditResult()
    rounds = 0
    while True:
        rounds += 1
        result = audit(cells, constraints, threshold=threshold, targets=targets, bound=bound)
        total.ranges.update(result.ranges)
        total.solves += result.solves
        total.components += result.components
        total.seconds += result.seconds
        if result.passed:
            break
        if rounds >= max_rounds:
            raise DisclosureError(
                f"disclosure control did not settle in {max_rounds} rounds; still exposed: "
                + "; ".join(cells.refs[c].label() for c in result.failed[:5])
            )
        before = [c for c in range(len(cells)) if cells.hidden[c]]
        chosen: set[int] = set()
        for c in result.failed:
            pick = _nearest_shown(cells, c, links, rank)
            if pick is None:
                raise DisclosureError(
                    "no further count can be withheld to protect "
                    f"{cells.refs[c].label()}: the relations (and any earlier release) pin "
                    "it whatever is shown"
                )
            chosen.add(pick)
        for c in chosen:
            cells.hide(c)
        _hide_companions(cells)
        newly = [c for c in range(len(cells)) if cells.hidden[c]]
        fresh = sorted(set(newly) - set(before))
        audited_cells += sum(1 for c in fresh if audited(cells, c))
        targets = sorted(set(result.failed) | {c for c in fresh if audited(cells, c)})
    total.failed = []

    loss = _loss(cells, primary, threshold)
    return ControlResult(
        tables=cells.to_tables(counts),
        cells=cells,
        constraints=constraints,
        audit=total,
        loss=loss,
        rounds=rounds,
        audited_cells=audited_cells,
    )


def _loss(cells: Cells, primary: list[bool], threshold: int) -> dict[str, TableLoss]:
    out: dict[str, TableLoss] = {}
    for table in CONTROLLED_TABLES:
        mine = [
            c
            for c, ref in enumerate(cells.refs)
            if ref.table == table and cells.role[c] == "count" and not cells.fixed[c]
        ]
        if not mine and table not in cells.rows:
            continue
        withheld = [c for c in mine if cells.hidden[c]]
        first = sum(1 for c in withheld if primary[c])
        people_share: float | None = None
        measure = PEOPLE_MEASURE.get(table)
        if measure:
            people = [c for c in mine if cells.refs[c].measure == measure]
            everyone = sum(cells.truth[c] or 0 for c in people)
            hidden = sum(cells.truth[c] or 0 for c in people if cells.hidden[c])
            # Whole per cent only: an exact share would be one more equation for a reader.
            people_share = round(100 * hidden / everyone) / 100 if everyone else 0.0
        out[table] = TableLoss(
            cells=len(mine),
            withheld=len(withheld),
            primary=first,
            secondary=len(withheld) - first,
            people_withheld_share=people_share,
        )
    return out


def reader_attack(
    tables: Mapping[str, pa.Table],
    *,
    threshold: int,
    layout: Layout = "grid",
    history: Sequence[EarlierRelease] = (),
) -> dict[str, tuple[float, float]]:
    """What a reader holding only ``tables`` (as published) can say about each withheld
    cell: ``{cell label: (lowest, highest)}``. A range at least ``threshold`` wide may be
    reported narrower than the reader's best (it is proven by alternative counts, not
    maximised); a narrower one is exact. With ``history`` (earlier releases of revised
    quarters, without their truth), the change of every count since is attacked too.
    Used by the tests and the benchmark."""
    from transforms.disclosure.audit import cell_ranges

    cells = Cells.from_published(tables)
    changes = _with_history(cells, history)
    bound = audit_bound(cells, threshold)
    constraints = reader_relations(cells, threshold=threshold, bound=bound, layout=layout)
    constraints += change_relations(changes)
    targets = _targets(cells, threshold)
    ranges, _, _ = cell_ranges(cells, constraints, targets, bound=bound, threshold=threshold)
    return {cells.refs[c].label(): r for c, r in ranges.items()}


@dataclass
class ReleaseFindings:
    """What the audit of published tables found, per table (cells named, never values)."""

    problems: dict[str, list[str]] = field(default_factory=dict)
    audited: dict[str, int] = field(default_factory=dict)
    solves: int = 0

    @property
    def passed(self) -> bool:
        return not any(self.problems.values())


def audit_release(
    published: Mapping[str, pa.Table],
    truth: Mapping[str, pa.Table],
    *,
    threshold: int,
    layout: Layout = "grid",
    history: Sequence[EarlierRelease] = (),
) -> ReleaseFindings:
    """Attack ``published`` (the tables as a reader gets them) knowing ``truth`` (the same
    tables before control): every shown count must be true and at least the threshold,
    and every withheld count must keep a range the audit cannot narrow."""
    from transforms.published_schema import published_table, suppressed_flag

    findings = ReleaseFindings()

    def problem(table: str, text: str) -> None:
        findings.problems.setdefault(table, []).append(text)

    for name in CONTROLLED_TABLES:
        if name not in published or name not in truth:
            continue
        findings.problems.setdefault(name, [])
        key = published_table(name).primary_key
        if _key_set(published[name], key) != _key_set(truth[name], key):
            problem(name, "the published rows are not the rows counted")
    cells = Cells.from_published(published, truth)
    changes = _with_history(cells, history)
    for c, ref in enumerate(cells.refs):
        shown = cells.shown[c]
        if shown is None or cells.fixed[c]:
            continue
        if shown < threshold and audited(cells, c):
            problem(ref.table, f"{ref.label()}: shown below the threshold {threshold}")
        if cells.truth[c] is not None and shown != cells.truth[c]:
            problem(ref.table, f"{ref.label()}: shown value is not the count")
    for name in CONTROLLED_TABLES:
        if name in published:
            schema = published_table(name)
            for m in schema.measures:
                flag = suppressed_flag(m)
                if flag not in published[name].column_names:
                    continue
                values = published[name].column(m).to_pylist()
                flags = published[name].column(flag).to_pylist()
                if any(f and v is not None for v, f in zip(values, flags, strict=True)):
                    problem(name, f"{name}.{m}: a cell flagged as withheld is not empty")
    bound = audit_bound(cells, threshold)
    constraints = reader_relations(cells, threshold=threshold, bound=bound, layout=layout)
    constraints += change_relations(changes)
    targets = _targets(cells, threshold)
    for c in targets:
        table = cells.refs[c].table
        findings.audited[table] = findings.audited.get(table, 0) + 1
    result = audit(cells, constraints, threshold=threshold, targets=targets, bound=bound)
    findings.solves = result.solves
    for c in result.failed:
        ref = cells.refs[c]
        if cells.role[c] == "change":
            problem(
                ref.table,
                f"{ref.label()}: a reader comparing the releases can tell that a few people "
                "were added or removed",
            )
        else:
            problem(
                ref.table,
                f"{ref.label()}: a reader can narrow it to a range narrower than {threshold}",
            )
    return findings


def _key_set(table: pa.Table, key: tuple[str, ...]) -> list[str]:
    columns = [table.column(k).to_pylist() for k in key]
    return sorted(map(str, zip(*columns, strict=True)))


def measure_loss(
    published: Mapping[str, pa.Table], truth: Mapping[str, pa.Table], *, threshold: int
) -> dict[str, TableLoss]:
    """The information lost in published tables (withheld cells and people), judged against
    the counts behind them: small withheld counts are primary, the others secondary."""
    cells = Cells.from_published(published, truth)
    primary = [
        cells.hidden[c] and audited(cells, c) and (cells.truth[c] or 0) < threshold
        for c in range(len(cells))
    ]
    return _loss(cells, primary, threshold)
