"""Disclosure control for the published count tables.

Why: the published tables count people in small groups (one postcode district, one outcome,
one quarter). A small count — or a zero — can identify someone or reveal something about
them ("nobody in M16 achieved"). So:

- **Primary suppression.** Any count below the threshold (default 5) is withheld, including 0.
- **Secondary suppression.** A withheld cell must not be recoverable from published totals.
  The tables have additive relations (a total equals the sum of its parts). For every
  relation whose total is published, the withheld parts must be none, or at least two whose
  sum is at least the threshold — one withheld part is total minus the others, and two
  withheld zeros would be recovered from a total equal to the visible parts. A violation is
  fixed by also withholding the smallest visible part (ties broken by the row's key, then the
  measure's position), or the total when no part is left. Relations share cells (the 2-D
  cross_org_reach table has row sums and area totals), so every relation touching a newly
  withheld cell is checked again until nothing changes. Withholding only ever grows, so
  this terminates.

The tables are described by a small ``DisclosureSpec`` (key, measures, relations) rather than
by code per table, so a new table or relation is a declaration, not a new algorithm.

Input and output are ``pyarrow.Table`` (what the warehouse returns and the release writer
takes). Withheld values become null and ``<measure>_suppressed`` flags are set; a null in the
input (a measure that does not apply to the row, such as ``engagements`` on an outcome-code
row) is not a count, is never withheld and has its flag false. The result depends only on
the rows, not their order.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import pyarrow as pa

from transforms.published_schema import published_table, suppressed_flag

DEFAULT_THRESHOLD = 5


@dataclass(frozen=True)
class GroupTotal:
    """Rows equal on every key column but ``dimension``: the row whose ``dimension`` is
    ``total`` holds, for each of ``measures``, the sum of the other rows."""

    dimension: str
    total: str
    measures: tuple[str, ...]


@dataclass(frozen=True)
class RowSum:
    """Within each row, measure ``total`` is the sum of measures ``parts``."""

    total: str
    parts: tuple[str, ...]


Relation = GroupTotal | RowSum


@dataclass(frozen=True)
class DisclosureSpec:
    """What to protect in one table: its key, the counts, and how counts add up."""

    key: tuple[str, ...]
    measures: tuple[str, ...]
    relations: tuple[Relation, ...]


@dataclass(frozen=True)
class DisclosureResult:
    """The controlled table and what was done to it (for run metadata and tests)."""

    table: pa.Table
    cells: int  # counts that were candidates (non-null measure values)
    primary: int  # withheld because below the threshold
    secondary: int  # withheld so that another withheld cell cannot be recovered
    inconsistent_relations: int  # relations whose input total was not the sum of its parts


def _spec_for(name: str) -> DisclosureSpec:
    schema = published_table(name)
    return DisclosureSpec(key=schema.primary_key, measures=tuple(schema.measures), relations=())


_OUTCOMES = _spec_for("outcomes_summary")
_REACH = _spec_for("cross_org_reach")

SPECS: dict[str, DisclosureSpec] = {
    "outcomes_summary": DisclosureSpec(
        key=_OUTCOMES.key,
        measures=_OUTCOMES.measures,
        relations=(GroupTotal("area", "all", _OUTCOMES.measures),),
    ),
    "cross_org_reach": DisclosureSpec(
        key=_REACH.key,
        measures=_REACH.measures,
        relations=(
            GroupTotal("area", "all", _REACH.measures),
            RowSum("people", ("served_by_1", "served_by_2", "served_by_3_plus")),
        ),
    ),
}


def _check_spec(spec: DisclosureSpec, table: pa.Table) -> None:
    names = set(table.column_names)
    needed = set(spec.key) | set(spec.measures)
    for rel in spec.relations:
        if isinstance(rel, GroupTotal):
            if rel.dimension not in spec.key:
                raise ValueError(f"relation dimension {rel.dimension!r} is not a key column")
            needed |= set(rel.measures)
        else:
            needed |= {rel.total, *rel.parts}
    missing = sorted(needed - names)
    if missing:
        raise ValueError(f"table lacks column(s) {', '.join(missing)} named by the spec")
    unknown = sorted(needed - set(spec.key) - set(spec.measures))
    if unknown:
        raise ValueError(f"relations name column(s) {', '.join(unknown)} that are not measures")


def _sort_key(key: tuple[Any, ...]) -> tuple[tuple[bool, str], ...]:
    return tuple((v is None, "" if v is None else str(v)) for v in key)


def suppress(
    table: pa.Table, spec: DisclosureSpec, *, threshold: int = DEFAULT_THRESHOLD
) -> DisclosureResult:
    """Apply primary and secondary suppression to ``table`` as ``spec`` describes.

    Returns the table with every column it had (measures withheld as null) and one boolean
    ``<measure>_suppressed`` column per measure (replacing any already there), plus counts
    of what was withheld.
    """
    if threshold < 1:
        raise ValueError(f"disclosure threshold must be at least 1, got {threshold}")
    _check_spec(spec, table)
    n_rows, measures = table.num_rows, spec.measures
    n_m = len(measures)
    m_index = {m: i for i, m in enumerate(measures)}

    keys = list(zip(*(table.column(k).to_pylist() for k in spec.key), strict=True))
    if len(keys) != n_rows:  # no key columns given
        keys = [()] * n_rows
    order = sorted(range(n_rows), key=lambda r: _sort_key(keys[r]))
    rank = [0] * n_rows
    for position, row in enumerate(order):
        rank[row] = position
    for a, b in pairwise(order):
        if keys[a] == keys[b] and spec.key:
            raise ValueError(f"duplicate key {dict(zip(spec.key, keys[a], strict=True))}")

    # Cells are row * n_m + measure index; None marks "does not apply".
    values: list[int | None] = [None] * (n_rows * n_m)
    for j, m in enumerate(measures):
        for r, v in enumerate(table.column(m).to_pylist()):
            if v is not None:
                if v < 0:
                    raise ValueError(f"negative count {v} in {m} for key {keys[r]}")
                values[r * n_m + j] = int(v)

    # Relations as (total cell, part cells), built in key order so the outcome is
    # independent of the input's row order.
    relations: list[tuple[int, tuple[int, ...]]] = []
    for rel in spec.relations:
        if isinstance(rel, RowSum):
            t, parts = m_index[rel.total], [m_index[p] for p in rel.parts]
            for r in order:
                relations.append((r * n_m + t, tuple(r * n_m + p for p in parts)))
        else:
            d = spec.key.index(rel.dimension)
            groups: dict[tuple[Any, ...], list[int]] = {}
            for r in order:
                groups.setdefault(keys[r][:d] + keys[r][d + 1 :], []).append(r)
            for rows in groups.values():
                totals = [r for r in rows if keys[r][d] == rel.total]
                if not totals:
                    continue
                total_row, part_rows = totals[0], [r for r in rows if keys[r][d] != rel.total]
                for m in rel.measures:
                    j = m_index[m]
                    relations.append((total_row * n_m + j, tuple(r * n_m + j for r in part_rows)))
    # Drop "does not apply" cells; a relation without a total constrains nothing.
    relations = [
        (t, tuple(p for p in parts if values[p] is not None))
        for t, parts in relations
        if values[t] is not None
    ]
    inconsistent = sum(
        1 for t, parts in relations if values[t] != sum(values[p] or 0 for p in parts)
    )

    suppressed = bytearray(len(values))
    primary = 0
    for c, v in enumerate(values):
        if v is not None and v < threshold:
            suppressed[c] = 1
            primary += 1

    touching: list[list[int]] = [[] for _ in values]
    for i, (t, parts) in enumerate(relations):
        touching[t].append(i)
        for p in parts:
            touching[p].append(i)

    def tie_break(cell: int) -> tuple[int, int, int]:
        return (values[cell] or 0, rank[cell // n_m], cell % n_m)

    queue = deque(range(len(relations)))
    queued = bytearray([1]) * len(relations)
    secondary = 0
    while queue:
        i = queue.popleft()
        queued[i] = 0
        total, parts = relations[i]
        while not suppressed[total]:
            hidden = [p for p in parts if suppressed[p]]
            if not hidden or (
                len(hidden) >= 2 and sum(values[p] or 0 for p in hidden) >= threshold
            ):
                break
            visible = [p for p in parts if not suppressed[p]]
            cell = min(visible, key=tie_break) if visible else total
            suppressed[cell] = 1
            secondary += 1
            for k in touching[cell]:
                if k != i and not queued[k]:
                    queued[k] = 1
                    queue.append(k)

    out = table
    for j, m in enumerate(measures):
        col = [None if suppressed[r * n_m + j] else values[r * n_m + j] for r in range(n_rows)]
        flags = [bool(suppressed[r * n_m + j]) for r in range(n_rows)]
        out = out.set_column(
            out.column_names.index(m), pa.field(m, pa.int64()), pa.array(col, pa.int64())
        )
        flag = suppressed_flag(m)
        flag_array = pa.array(flags, pa.bool_())
        if flag in out.column_names:
            out = out.set_column(out.column_names.index(flag), flag, flag_array)
        else:
            out = out.append_column(pa.field(flag, pa.bool_(), nullable=False), flag_array)
    return DisclosureResult(
        table=out,
        cells=sum(v is not None for v in values),
        primary=primary,
        secondary=secondary,
        inconsistent_relations=inconsistent,
    )


def apply_disclosure_control(
    name: str, table: pa.Table, *, threshold: int = DEFAULT_THRESHOLD
) -> pa.Table:
    """Disclosure-control published table ``name`` and conform it to its published schema.

    ``name`` is ``outcomes_summary`` or ``cross_org_reach`` (``organisation_summary`` holds
    no person counts and is only conformed). Use ``suppress`` for the statistics as well.
    """
    schema = published_table(name)
    if name in SPECS:
        table = suppress(table, SPECS[name], threshold=threshold).table
    return schema.conform(table)


def relation_violations(
    table: pa.Table, spec: DisclosureSpec, original: pa.Table, *, threshold: int
) -> list[str]:
    """Problems a controlled ``table`` still has, judged against the uncontrolled ``original``.

    Used by tests and by asset checks: a published value below the threshold, a flag that
    disagrees with the value, or a relation whose total is published with exactly one
    withheld part or withheld parts summing below the threshold. Empty means safe by the
    rules above.
    """
    problems: list[str] = []
    keys = list(zip(*(original.column(k).to_pylist() for k in spec.key), strict=True))
    index = {k: r for r, k in enumerate(keys)}
    out_keys = list(zip(*(table.column(k).to_pylist() for k in spec.key), strict=True))
    if sorted(map(_sort_key, out_keys)) != sorted(map(_sort_key, keys)):
        return ["controlled table does not have the same rows as the original"]
    at = [index[k] for k in out_keys]  # controlled row -> original row
    orig = {m: original.column(m).to_pylist() for m in spec.measures}
    shown: dict[str, list[Any]] = {m: [None] * len(keys) for m in spec.measures}
    hidden: dict[str, list[bool]] = {m: [False] * len(keys) for m in spec.measures}
    for m in spec.measures:
        vals = table.column(m).to_pylist()
        flags = table.column(suppressed_flag(m)).to_pylist()
        for r_out, r in enumerate(at):
            shown[m][r], hidden[m][r] = vals[r_out], bool(flags[r_out])
            if hidden[m][r] and vals[r_out] is not None:
                problems.append(f"{keys[r]} {m}: flagged but shown")
            if not hidden[m][r] and vals[r_out] != orig[m][r]:
                problems.append(f"{keys[r]} {m}: shown value differs from the original")
            if vals[r_out] is not None and vals[r_out] < threshold:
                problems.append(f"{keys[r]} {m}: published value below {threshold}")

    def check(label: str, total: tuple[str, int], parts: list[tuple[str, int]]) -> None:
        tm, tr = total
        if orig[tm][tr] is None or hidden[tm][tr]:
            return
        sup = [orig[m][r] for m, r in parts if orig[m][r] is not None and hidden[m][r]]
        if len(sup) == 1 or (sup and sum(sup) < threshold):
            # The cells, never their values: these messages become check metadata.
            problems.append(f"{label}: {len(sup)} withheld part(s) recoverable from total")

    for rel in spec.relations:
        if isinstance(rel, RowSum):
            for r in range(len(keys)):
                check(f"{keys[r]} {rel.total}", (rel.total, r), [(p, r) for p in rel.parts])
        else:
            d = spec.key.index(rel.dimension)
            groups: dict[tuple[Any, ...], list[int]] = {}
            for r, k in enumerate(keys):
                groups.setdefault(k[:d] + k[d + 1 :], []).append(r)
            for g, rows in groups.items():
                totals = [r for r in rows if keys[r][d] == rel.total]
                if not totals:
                    continue
                parts = [r for r in rows if keys[r][d] != rel.total]
                for m in rel.measures:
                    check(f"{g} {m} over {rel.dimension}", (m, totals[0]), [(m, r) for r in parts])
    return problems
