"""Attack a release as a reader would: how far can each withheld count be narrowed down?

For every withheld cell, the tightest lower and upper bound that the shown values and the
relations of ``transforms.disclosure.relations`` allow, computed with HiGHS as an integer
program (counts are whole numbers, and "organisations is 0 exactly when nobody is counted"
is only tight in integers). A release is safe when every withheld cell's range is at least
the threshold wide, and every withheld small count (0 included) can lie anywhere from 0 to at
least the threshold.

Why it is fast enough: withheld cells only interact through relations, so the problem
splits into independent components (in practice one per quarter, and smaller where shown
totals cut the links); each component is one HiGHS model whose objective is changed per
cell. The bounds reported are the best integer solutions HiGHS found, which can only make
a range look narrower than it is (never wider), so the audit errs on the side of refusing.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from transforms.disclosure.cells import Cells
from transforms.disclosure.relations import Constraint


class AuditError(Exception):
    """The published values cannot be explained by any counts (a bug, not a data problem)."""


@dataclass
class AuditResult:
    """Ranges found for the withheld cells audited, and the cells that failed."""

    ranges: dict[int, tuple[float, float]] = field(default_factory=dict)
    failed: list[int] = field(default_factory=list)
    solves: int = 0
    components: int = 0
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failed


def fails(
    lower: float, upper: float, truth: int | None, threshold: int, role: str = "count"
) -> bool:
    """Whether a withheld cell with range ``[lower, upper]`` is disclosed.

    A count: ``truth`` (when known) says whether it is a small count, which must be able to
    lie anywhere from 0 to at least the threshold; any withheld count needs a range at least
    the threshold wide. A change between releases that is small but not 0 (a few people
    added or removed) must be indistinguishable from no change: its range must hold 0 and
    be at least the threshold wide.
    """
    if upper - lower < threshold:
        return True
    if role == "change":
        return not lower <= 0 <= upper
    return truth is not None and truth < threshold and (lower > 0 or upper < threshold)


def judged(cells: Cells, cell: int, threshold: int) -> bool:
    """Whether the audit must judge ``cell``: every withheld count, and every change between
    releases that is small but not 0 (the others say nothing about a few people)."""
    if cells.role[cell] == "change":
        truth = cells.truth[cell]
        return truth is None or 0 < abs(truth) < threshold
    return cells.hidden[cell]


class _Union:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _components(
    cells: Cells, constraints: list[Constraint]
) -> tuple[dict[int, list[int]], dict[int, list[Constraint]]]:
    """Withheld cells grouped by the relations that link them, with each group's relations."""
    union = _Union()
    for c, hidden in enumerate(cells.hidden):
        if hidden:
            union.find(c)
    for con in constraints:
        hidden = [c for c, _ in con.terms if cells.hidden[c]]
        for a, b in pairwise(hidden):
            union.union(a, b)
    members: dict[int, list[int]] = defaultdict(list)
    for c in union.parent:
        members[union.find(c)].append(c)
    linked: dict[int, list[Constraint]] = defaultdict(list)
    for con in constraints:
        first = next((c for c, _ in con.terms if cells.hidden[c]), None)
        if first is not None:
            linked[union.find(first)].append(con)
        else:
            total = sum(k * (cells.shown[c] or 0) for c, k in con.terms)
            if not con.lower - 1e-9 <= total <= con.upper + 1e-9:
                raise AuditError(f"shown values break relation {con.rule}")
    return members, linked


class _Model:
    """One component: its withheld cells and the relations between them, solved with HiGHS.

    Three programs over the same cells, each built when first needed:

    - ``outer``: the linear relaxation (fast, warm-started). Its range contains the integer
      range, so a cell it already narrows down is exposed.
    - ``inner``: the relations with each "if a > 0 then b > 0" row replaced by a linear row
      that implies it, following a whole-number base point (the true counts, or any
      integer solution): where b is at least 1 there, b >= 1; where it is 0, b >= a. Its
      optimum, when whole and feasible for every relation, is a real alternative set of
      counts, so the range it shows is a range a reader cannot rule out.
    - ``exact``: the integer program, for the cells the other two cannot settle.
    """

    def __init__(
        self,
        cells: Cells,
        column_cells: list[int],
        constraints: list[Constraint],
        bound: int,
    ) -> None:
        import highspy

        self.hs = highspy
        self.cells, self.constraints, self.bound = cells, constraints, bound
        self.column = {c: j for j, c in enumerate(column_cells)}
        self.n = len(column_cells)
        self.col_lower = np.array(
            [max(cells.lower(c), -float(bound)) for c in column_cells], dtype=float
        )
        # Each row as (column indices, coefficients, lower, upper) after shown cells are
        # moved to the bounds, plus the column of its "then" cell when that is withheld.
        self.rows: list[tuple[np.ndarray, np.ndarray, float, float, int | None]] = []
        for con in constraints:
            constant, idx, val = 0.0, [], []
            for c, k in con.terms:
                if cells.hidden[c]:
                    idx.append(self.column[c])
                    val.append(float(k))
                else:
                    constant += k * (cells.shown[c] or 0)
            then = self.column.get(con.then) if con.then is not None else None
            self.rows.append(
                (
                    np.array(idx, np.int32),
                    np.array(val, np.float64),
                    -math.inf if math.isinf(con.lower) else con.lower - constant,
                    math.inf if math.isinf(con.upper) else con.upper - constant,
                    then if con.then is not None and cells.hidden[con.then] else None,
                )
            )
        self.row_of = np.repeat(np.arange(len(self.rows)), [len(r[0]) for r in self.rows])
        self.flat_idx = (
            np.concatenate([r[0] for r in self.rows]) if self.rows else np.zeros(0, np.int32)
        )
        self.flat_val = np.concatenate([r[1] for r in self.rows]) if self.rows else np.zeros(0)
        self.row_lower = np.array([r[2] for r in self.rows], dtype=float)
        self.row_upper = np.array([r[3] for r in self.rows], dtype=float)
        self._outer: Any = None
        self._inner: Any = None
        self._exact: Any = None
        self.base: np.ndarray | None = None
        self.integer_solves = 0

    # -- building -------------------------------------------------------------------------
    def _new(self, lower: np.ndarray | None = None, *, integer: bool = False) -> Any:
        hs = self.hs
        h = hs.Highs()
        for option, value in (
            ("output_flag", False),
            ("mip_rel_gap", 0.0),
            ("mip_abs_gap", 0.5),
            ("mip_feasibility_tolerance", 1e-9),
            ("threads", 1),
        ):
            h.setOptionValue(option, value)
        n = self.n
        empty_i, empty_f = np.array([], dtype=np.int32), np.array([], dtype=np.float64)
        h.addCols(
            n,
            np.zeros(n),
            self.col_lower if lower is None else lower,
            np.full(n, float(self.bound)),
            0,
            empty_i,
            empty_i,
            empty_f,
        )
        if integer:
            h.changeColsIntegrality(
                n,
                np.arange(n, dtype=np.int32),
                np.full(n, hs.HighsVarType.kInteger.value, dtype=np.uint8),
            )
        return h

    def _add_row(self, h: Any, idx: np.ndarray, val: np.ndarray, lo: float, hi: float) -> None:
        inf = self.hs.kHighsInf
        h.addRow(
            -inf if math.isinf(lo) else lo,
            inf if math.isinf(hi) else hi,
            len(idx),
            idx,
            val,
        )

    def outer(self) -> Any:
        if self._outer is None:
            self._outer = self._new()
            for idx, val, lo, hi, _ in self.rows:
                self._add_row(self._outer, idx, val, lo, hi)
        return self._outer

    def exact(self) -> Any:
        if self._exact is None:
            self._exact = self._new(integer=True)
            for idx, val, lo, hi, _ in self.rows:
                self._add_row(self._exact, idx, val, lo, hi)
        return self._exact

    def inner(self) -> Any:
        if self._inner is None:
            base = self._base_point()
            self._inner = h = self._new()
            self.then_rows: dict[int, list[int]] = defaultdict(list)
            self.on: dict[int, bool] = {}
            for r, (idx, val, lo, hi, then) in enumerate(self.rows):
                self._add_row(h, idx, val, lo, hi)
                if then is not None:
                    self.then_rows[then].append(r)
                    self.on[then] = True
            for then in self.then_rows:
                if base[then] >= 1:
                    h.changeColBounds(then, 1.0, float(self.bound))
                else:
                    self._switch(then, on=False)
            self.default_on = dict(self.on)
        return self._inner

    def _switch(self, then: int, *, on: bool) -> None:
        """Write the rows of "if any of these is above 0 then ``then`` is" as ``then >= 1``
        (on: the row itself then holds for any counts up to the bound) or as
        ``sum(when) <= then`` (off: ``then`` may be 0, and is at least the others' sum);
        either implies the relation, and both are linear with small whole coefficients."""
        if self.on.get(then) == on:
            return
        h = self._inner
        h.changeColBounds(then, 1.0 if on else float(self.col_lower[then]), float(self.bound))
        for r in self.then_rows[then]:
            idx, val, _, _, _ = self.rows[r]
            h.changeCoeff(r, then, float(val[np.flatnonzero(idx == then)[0]]) if on else -1.0)
        self.on[then] = on

    def _reset(self) -> None:
        for then, on in self.default_on.items():
            self._switch(then, on=on)

    def _search(self, costs: np.ndarray, maximise: bool, down: Iterable[int]) -> np.ndarray | None:
        """Best whole-number solution of the inner program for objective ``costs``, with the
        "then" cells in ``down`` allowed to reach 0, flipping "off" rows that bind to "on"
        for a few rounds (an off row caps a cell at the others' sum; on lifts that cap)."""
        h = self.inner()
        hs = self.hs
        pinned_off = {int(c) for c in down}
        for col in pinned_off:
            if col in self.on:
                self._switch(col, on=False)
        touched = np.flatnonzero(costs).astype(np.int32)
        h.changeObjectiveSense(hs.ObjSense.kMaximize if maximise else hs.ObjSense.kMinimize)
        h.changeColsCost(len(touched), touched, costs[touched])
        best: np.ndarray | None = None
        best_value = -math.inf if maximise else math.inf
        try:
            for _ in range(6):
                h.run()
                if h.getModelStatus() != hs.HighsModelStatus.kOptimal:
                    break
                solution = h.getSolution()
                point = np.asarray(solution.col_value)
                if np.any(np.abs(point - np.round(point)) > 1e-7):
                    # A warm start can land on a half-integral vertex of an optimal face
                    # whose other vertices are whole; a cold start usually finds one.
                    h.clearSolver()
                    h.run()
                    if h.getModelStatus() != hs.HighsModelStatus.kOptimal:
                        break
                    solution = h.getSolution()
                    point = np.asarray(solution.col_value)
                rounded = np.round(point)
                if np.all(np.abs(point - rounded) <= 1e-7) and self.feasible(rounded):
                    value = float(costs @ rounded)
                    if (value > best_value) if maximise else (value < best_value):
                        best, best_value = rounded, value
                duals = np.asarray(solution.row_dual)
                flip = [
                    then
                    for then, rows in self.then_rows.items()
                    if not self.on[then]
                    and then not in pinned_off
                    and any(abs(duals[r]) > 1e-9 for r in rows)
                ]
                if not flip:
                    break
                for then in flip:
                    self._switch(then, on=True)
        finally:
            h.changeColsCost(len(touched), touched, np.zeros(len(touched)))
            self._reset()
        return best

    def _base_point(self) -> np.ndarray:
        """A whole-number solution: the true counts when known, else one the solver finds."""
        if self.base is not None:
            return self.base
        truth = [self.cells.truth[c] for c in self.column]
        if all(t is not None for t in truth):
            point = np.array(truth, dtype=float)
            if self.feasible(point):
                self.base = point
                return point
        h = self.exact()
        h.run()
        self.integer_solves += 1
        if h.getModelStatus() != self.hs.HighsModelStatus.kOptimal:
            raise AuditError("the shown values and the relations admit no counts at all")
        self.base = np.round(np.asarray(h.getSolution().col_value))
        return self.base

    # -- solving --------------------------------------------------------------------------
    def feasible(self, x: np.ndarray) -> bool:
        """Whether whole-number point ``x`` satisfies every relation and column bound."""
        if np.any(x < self.col_lower) or np.any(x > self.bound):
            return False
        activity = np.bincount(
            self.row_of, weights=self.flat_val * x[self.flat_idx], minlength=len(self.rows)
        )
        return bool(
            np.all(activity >= self.row_lower - 1e-9) and np.all(activity <= self.row_upper + 1e-9)
        )

    def _optimum(self, h: Any, j: int, maximise: bool) -> float | None:
        """Optimum of column ``j`` in ``h``; inf/0 when unbounded, None when infeasible."""
        hs = self.hs
        h.changeObjectiveSense(hs.ObjSense.kMaximize if maximise else hs.ObjSense.kMinimize)
        h.changeColCost(j, 1.0)
        try:
            h.run()
            status = h.getModelStatus()
            if status in (hs.HighsModelStatus.kUnbounded,):
                return math.inf if maximise else 0.0
            if status == hs.HighsModelStatus.kInfeasible:
                return None
            if status != hs.HighsModelStatus.kOptimal:
                raise AuditError(f"the solver stopped without an answer ({status})")
            return float(h.getInfo().objective_function_value)
        finally:
            h.changeColCost(j, 0.0)

    def witnessed(self, cell: int, *, maximise: bool) -> float | None:
        """The furthest ``cell`` goes in a whole-number solution found by the inner program
        (a value a reader cannot rule out), or None when that finds none."""
        j = self.column[cell]
        if maximise:
            relaxed = self._optimum(self.outer(), j, True)
            if relaxed is not None and math.isinf(relaxed):
                return relaxed
        costs = np.zeros(self.n)
        costs[j] = 1.0
        point = self._search(costs, maximise, [] if maximise else [j])
        return None if point is None else float(point[j])

    def batch_witness(self, columns_up: list[int], columns_down: list[int]) -> np.ndarray | None:
        """A whole-number solution of the inner program that pushes the cells of
        ``columns_up`` up and those of ``columns_down`` down together (one solve settles many
        cells at once), or None when none is found."""
        costs = np.zeros(self.n)
        costs[columns_up] = 1.0
        costs[columns_down] = -1.0
        return self._search(costs, True, columns_down)

    def extreme(self, cell: int, *, maximise: bool) -> float:
        """The exact integer optimum of ``cell``."""
        j = self.column[cell]
        relaxed = self._optimum(self.outer(), j, maximise)
        if relaxed is None:
            raise AuditError("the shown values and the relations admit no counts at all")
        if math.isinf(relaxed):
            return relaxed
        target = math.floor(relaxed + 1e-7) if maximise else math.ceil(relaxed - 1e-7)
        seen = self.witnessed(cell, maximise=maximise)
        if seen is not None and seen == target:
            return float(target)
        self.integer_solves += 1
        exact = self._optimum(self.exact(), j, maximise)
        if exact is None:
            raise AuditError("the shown values and the relations admit no counts at all")
        return exact if math.isinf(exact) else float(round(exact))


def cell_ranges(
    cells: Cells,
    constraints: list[Constraint],
    targets: Iterable[int],
    *,
    bound: int,
    threshold: int | None = None,
) -> tuple[dict[int, tuple[float, float]], int, int]:
    """``{cell: (lowest, highest)}`` for the withheld ``targets``, with the solve and
    component counts.

    With ``threshold``, a range is first looked for with the inner program (values a reader
    cannot rule out); when that already passes the audit it is reported as it is (the true
    range is at least as wide). Otherwise, and without ``threshold``, the exact integer
    range is computed. A target whose true value is 0 has lowest 0 without solving (the
    true counts satisfy every relation).
    """
    wanted = [t for t in targets if cells.hidden[t]]
    if not wanted:
        return {}, 0, 0
    members, linked = _components(cells, constraints)
    union_of: dict[int, int] = {}
    for root, group in members.items():
        for c in group:
            union_of[c] = root
    by_component: dict[int, list[int]] = defaultdict(list)
    for t in wanted:
        by_component[union_of[t]].append(t)
    ranges: dict[int, tuple[float, float]] = {}
    solves = 0
    for root, group_targets in by_component.items():
        model = _Model(cells, sorted(members[root]), linked[root], bound)
        if threshold is not None:
            settled, batch_solves = _settle_in_batches(model, group_targets, threshold)
            ranges.update(settled)
            solves += batch_solves
        for t in sorted(group_targets):
            if t in ranges:
                continue
            truth, role = cells.truth[t], cells.role[t]
            floor = truth == 0 and role == "count"
            if threshold is not None:
                low = 0.0 if floor else model.witnessed(t, maximise=False)
                high = model.witnessed(t, maximise=True)
                solves += 2
                if (
                    low is not None
                    and high is not None
                    and not fails(low, high, truth, threshold, role)
                ):
                    ranges[t] = (low, high)
                    continue
            low = 0.0 if floor else model.extreme(t, maximise=False)
            high = model.extreme(t, maximise=True)
            solves += 2
            ranges[t] = (low, high)
        solves += model.integer_solves
    return ranges, solves, len(by_component)


def _settle_in_batches(
    model: _Model, targets: list[int], threshold: int, max_solves: int = 40
) -> tuple[dict[int, tuple[float, float]], int]:
    """Ranges proven wide enough by whole-number solutions found a batch at a time.

    Each solve pushes every unsettled cell that still needs a higher value up and every one
    that needs a lower value down; the solution is a set of counts a reader cannot rule out,
    so the lowest and highest value each cell takes across the solutions found (and the true
    counts) bound a range the reader cannot narrow. Stops when a solve settles nothing.
    """
    cells = model.cells
    base = model._base_point()
    columns = {t: model.column[t] for t in targets}
    low = {t: float(base[j]) for t, j in columns.items()}
    high = dict(low)
    for t in targets:
        if cells.truth[t] == 0 and cells.role[t] == "count":
            low[t] = 0.0

    def needs(t: int) -> tuple[bool, bool]:
        lo, hi, truth, role = low[t], high[t], cells.truth[t], cells.role[t]
        if not fails(lo, hi, truth, threshold, role):
            return False, False
        if role == "change":
            return hi < max(0.0, lo + threshold), lo > min(0.0, hi - threshold)
        small = truth is not None and truth < threshold
        up = hi < threshold if small else True
        down = lo > 0 if small else True
        return up, down

    solves = 0
    open_cells = list(targets)
    while open_cells and solves < max_solves:
        wants = {t: needs(t) for t in open_cells}
        open_cells = [t for t in open_cells if any(wants[t])]
        if not open_cells:
            break
        up = [columns[t] for t in open_cells if wants[t][0]]
        down = [columns[t] for t in open_cells if wants[t][1] and not wants[t][0]]
        point = model.batch_witness(up, down)
        solves += 1
        if point is None:
            break
        progress = False
        for t in open_cells:
            value = float(point[columns[t]])
            if value > high[t] or value < low[t]:
                progress = True
            high[t] = max(high[t], value)
            low[t] = min(low[t], value)
        if not progress:
            break
    done = {t: (low[t], high[t]) for t in targets if not any(needs(t))}
    return done, solves


def audit(
    cells: Cells,
    constraints: list[Constraint],
    *,
    threshold: int,
    targets: Iterable[int] | None = None,
    bound: int | None = None,
) -> AuditResult:
    """Bound every withheld cell in ``targets`` (default: all withheld) and judge it."""
    started = time.perf_counter()
    if targets is None:
        targets = [c for c, h in enumerate(cells.hidden) if h]
    bound = bound or audit_bound(cells, threshold)
    ranges, solves, components = cell_ranges(
        cells, constraints, targets, bound=bound, threshold=threshold
    )
    failed = [
        c
        for c, (lo, hi) in sorted(ranges.items())
        if fails(lo, hi, cells.truth[c], threshold, cells.role[c])
    ]
    return AuditResult(
        ranges=ranges,
        failed=failed,
        solves=solves,
        components=components,
        seconds=time.perf_counter() - started,
    )


def audit_bound(cells: Cells, threshold: int) -> int:
    """A number no count can exceed, for relations of the form "if a > 0 then b > 0".

    From the true values when known (tighter than a reader could pick, so the audit's
    attacker is at least as strong as any reader's), else from the shown ones.
    """
    values = [v for v in cells.truth if v is not None] or [v for v in cells.shown if v is not None]
    return 2 * max(values, default=0) + 2 * threshold + 1
