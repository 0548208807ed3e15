"""Disclosure control against a reader who attacks the published files with an integer program.

The attack uses nothing but a release's CSV files and the relations a reader can know from
its documentation (``transforms.disclosure.relations``). Round one's release (kept as a
fixture) falls to it; releases controlled now must not, on the demo-like networks
generated here and on the demo itself (tests/pipelines/test_demo.py).
"""

from __future__ import annotations

import random
import re
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings

from tests.transforms.networks import CODES, Activity, counts_of, networks
from transforms.disclosure import (
    Cells,
    audit_release,
    check_truth,
    control_release,
    read_release_csvs,
    reader_attack,
    reader_relations,
)
from transforms.disclosure.audit import audit_bound, cell_ranges, fails
from transforms.disclosure.control import audited
from transforms.release import ReleaseError, write_release

FIXTURES = Path(__file__).parent.parent / "fixtures" / "disclosure"
THRESHOLD = 5
SLOW = settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def _demo_like_network(seed: int = 7, people: int = 150) -> list[Activity]:
    """A fixed network big enough to need secondary suppression in every table."""
    rng = random.Random(seed)
    members = [f"org{i}" for i in range(4)]
    districts = ["M14", "M15", "M16", "M20", "M21"]
    rows: list[Activity] = []
    for p in range(people):
        area = rng.choice([*districts, *districts, "unknown"])
        served = rng.sample(members, rng.choice([1, 1, 1, 2, 3]))
        for period in rng.sample(["2025-Q1", "2025-Q2"], rng.choice([1, 2])):
            for org in served:
                outcome_area = rng.choice(["housing", "employment", "experience"])
                rows.append(
                    Activity(period, "engagement", org, f"p{p}", outcome_area, None, None, area)
                )
                if rng.random() < 0.5:
                    rows.append(
                        Activity(period, "delivery", org, f"p{p}", outcome_area, None, None, area)
                    )
                if rng.random() < 0.6:
                    code = rng.choice(CODES[outcome_area])
                    status = rng.choice(["achieved", "progressing", "not_achieved"])
                    rows.append(
                        Activity(period, "outcome", org, f"p{p}", outcome_area, code, status, area)
                    )
    return rows


def _published_csvs(tables: dict[str, pa.Table], folder: Path) -> dict[str, pa.Table]:
    """Write a real release of ``tables`` and read back only its CSV files."""
    release = write_release(folder / "releases", "v1", tables, {}, disclosure_threshold=THRESHOLD)
    return read_release_csvs(release)


# -- the attack ---------------------------------------------------------------------------


def test_round_one_release_falls_to_the_attack() -> None:
    """Regression fixture: round one's demo release (primary suppression plus area and row
    sums only), attacked from its CSVs, gives away the 16 cells the review found."""
    tables = read_release_csvs(FIXTURES / "round_one")
    ranges = reader_attack(tables, threshold=THRESHOLD, layout="sparse")
    pinned = {label: lo for label, (lo, hi) in ranges.items() if lo == hi}
    assert len(ranges) == 918
    assert len(pinned) == 16
    assert sum(1 for v in pinned.values() if v == 0) == 10
    key = (
        "outcomes_summary(period=2025-Q2, area=M21, outcome_area=experience, "
        "outcome_code=satisfied_with_help).people_achieving"
    )
    assert pinned[key] == 4


def test_controlled_release_resists_the_attack(tmp_path: Path) -> None:
    counts = counts_of(_demo_like_network(), tmp_path)
    result = control_release(counts, threshold=THRESHOLD)
    assert result.loss["outcomes_summary"].secondary > 0  # the network needs it
    ranges = reader_attack(_published_csvs(result.tables, tmp_path), threshold=THRESHOLD)
    assert ranges, "nothing was withheld"
    narrow = {k: v for k, v in ranges.items() if v[1] - v[0] < THRESHOLD}
    assert not narrow


@pytest.mark.slow
@SLOW
@given(networks())
def test_generated_networks_resist_the_attack(rows: list[Activity]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        counts = counts_of(rows, Path(folder))
        result = control_release(counts, threshold=THRESHOLD)
        loaded = result.tables["organisation_summary"].column("records_loaded").to_pylist()
        if not any(loaded):  # every member below the threshold: nothing can be published
            with pytest.raises(ReleaseError, match="nothing to publish"):
                _published_csvs(result.tables, Path(folder))
            return
        published = _published_csvs(result.tables, Path(folder))
    ranges = reader_attack(published, threshold=THRESHOLD)
    assert all(hi - lo >= THRESHOLD for lo, hi in ranges.values())
    findings = audit_release(published, counts, threshold=THRESHOLD)
    assert findings.passed, findings.problems


@settings(max_examples=40, deadline=None, derandomize=True)
@given(networks(max_people=40, max_periods=3, outcome_areas=4))
def test_every_relation_holds_for_the_true_counts(rows: list[Activity]) -> None:
    """A relation the true counts break would let the audit 'prove' wrong things."""
    with tempfile.TemporaryDirectory() as folder:
        counts = counts_of(rows, Path(folder))
    cells = Cells.from_counts(counts)
    constraints = reader_relations(cells, threshold=THRESHOLD, bound=audit_bound(cells, THRESHOLD))
    assert not check_truth(cells, constraints)
    assert {c.rule for c in constraints} >= {"area_total", "code_bounds", "reach_row_sum"}


def test_audit_ranges_agree_with_an_independent_integer_program(tmp_path: Path) -> None:
    """The audit's fast path (linear programs and whole-number witnesses) against scipy's
    MILP on the same relations: every range it reports is contained in the exact one, and
    a range it reports as too narrow is exactly that narrow."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    counts = counts_of(_demo_like_network(seed=3, people=90), tmp_path)
    result = control_release(counts, threshold=THRESHOLD)
    cells = Cells.from_published(result.tables, counts)
    bound = audit_bound(cells, THRESHOLD)
    constraints = reader_relations(cells, threshold=THRESHOLD, bound=bound)
    hidden = [c for c in range(len(cells)) if cells.hidden[c]]
    column = {c: j for j, c in enumerate(hidden)}
    rows, lower, upper = [], [], []
    for con in constraints:
        row = np.zeros(len(hidden))
        constant = 0.0
        for c, k in con.terms:
            if cells.hidden[c]:
                row[column[c]] += k
            else:
                constant += k * cells.shown[c]
        if row.any():
            rows.append(row)
            lower.append(con.lower - constant)
            upper.append(con.upper - constant)
    matrix = LinearConstraint(np.array(rows), np.array(lower), np.array(upper))
    targets = [c for c in hidden if audited(cells, c)]
    sample = random.Random(1).sample(targets, min(25, len(targets)))
    ours, _, _ = cell_ranges(cells, constraints, sample, bound=bound, threshold=THRESHOLD)
    for c in sample:
        exact = []
        for sign in (1, -1):
            objective = np.zeros(len(hidden))
            objective[column[c]] = sign
            solved = milp(
                objective,
                constraints=matrix,
                integrality=np.ones(len(hidden)),
                bounds=Bounds(0, bound),
            )
            assert solved.status == 0
            exact.append(sign * round(solved.fun))
        lo, hi = ours[c]
        assert exact[0] <= lo and hi <= exact[1], cells.refs[c].label()
        assert not fails(exact[0], exact[1], cells.truth[c], THRESHOLD)


# -- what control does --------------------------------------------------------------------


def test_small_counts_and_zeros_are_withheld_and_organisations_go_with_people(
    tmp_path: Path,
) -> None:
    counts = counts_of(_demo_like_network(), tmp_path)
    result = control_release(counts, threshold=THRESHOLD)
    for name, table in result.tables.items():
        for row in table.to_pylist():
            for measure, value in row.items():
                if measure.endswith("_suppressed") or value is None:
                    continue
                if f"{measure}_suppressed" in row and measure != "organisations":
                    assert value >= THRESHOLD, (name, measure)
    true_rows = {
        (r["period"], r["area"], r["outcome_area"], r["outcome_code"]): r
        for r in counts["outcomes_summary"].to_pylist()
    }
    zeros = 0
    for row in result.tables["outcomes_summary"].to_pylist():
        key = (row["period"], row["area"], row["outcome_area"], row["outcome_code"])
        if true_rows[key]["people_engaged"] == 0:
            zeros += 1
            assert row["people_engaged_suppressed"]
        if row["people_engaged_suppressed"] and row["area"] == "all":
            assert row["organisations_suppressed"] and row["organisations"] is None
        if row["area"] != "all":
            assert row["organisations"] is None and not row["organisations_suppressed"]
    assert zeros > 0


def test_rows_form_a_full_grid_whatever_the_counts(tmp_path: Path) -> None:
    """Which rows exist must not depend on small counts: every quarter has every area it
    names (plus other, unknown and all) times every outcome area and code."""
    counts = counts_of(_demo_like_network(people=40), tmp_path)
    outcomes = counts["outcomes_summary"].to_pylist()
    per_place: dict[tuple[str, str], int] = {}
    for row in outcomes:
        per_place[(row["period"], row["area"])] = per_place.get((row["period"], row["area"]), 0) + 1
    assert len(set(per_place.values())) == 1  # the same rows for every quarter and area
    reach_areas = {(r["period"], r["area"]) for r in counts["cross_org_reach"].to_pylist()}
    assert reach_areas == set(per_place)
    for period in {p for p, _ in per_place}:
        assert {(period, "all"), (period, "other"), (period, "unknown")} <= reach_areas
    for row in counts["cross_org_reach"].to_pylist():
        if row["area"] not in ("all", "other", "unknown"):
            assert row["people"] >= THRESHOLD  # a named district is never a small group


def test_result_does_not_depend_on_row_order(tmp_path: Path) -> None:
    counts = counts_of(_demo_like_network(people=80), tmp_path)
    shuffled = {}
    for name, table in counts.items():
        order = list(range(table.num_rows))
        random.Random(5).shuffle(order)
        shuffled[name] = table.take(order)
    a = control_release(counts, threshold=THRESHOLD)
    b = control_release(shuffled, threshold=THRESHOLD)
    for name in counts:
        key = [c for c in a.tables[name].column_names if not c.endswith("_suppressed")][:4]
        assert (
            a.tables[name]
            .sort_by([(k, "ascending") for k in key])
            .equals(b.tables[name].sort_by([(k, "ascending") for k in key]))
        )


def test_information_loss_is_reported_per_table(tmp_path: Path) -> None:
    counts = counts_of(_demo_like_network(), tmp_path)
    result = control_release(counts, threshold=THRESHOLD)
    for name, table in result.tables.items():
        loss = result.loss[name]
        flags = [c for c in table.column_names if c.endswith("_suppressed")]
        assert loss.withheld == sum(sum(table.column(f).to_pylist()) for f in flags)
        assert loss.withheld == loss.primary + loss.secondary
        assert 0 < loss.withheld_share <= 1
    share = result.loss["outcomes_summary"].people_withheld_share
    assert share is not None and 0 < share < 1 and round(share, 2) == share


def test_threshold_is_configurable(tmp_path: Path) -> None:
    counts = counts_of(_demo_like_network(people=60), tmp_path)
    result = control_release(counts, threshold=3)
    shown = [
        v
        for row in result.tables["cross_org_reach"].to_pylist()
        for k, v in row.items()
        if not k.endswith("_suppressed") and isinstance(v, int)
    ]
    assert min(shown) >= 3
    with pytest.raises(ValueError, match="at least 1"):
        control_release(counts, threshold=0)


# -- the check ----------------------------------------------------------------------------

_LABEL = re.compile(r"^(outcomes_summary|cross_org_reach|organisation_summary)\([^)]*\)\.\w+: ")


def test_audit_refuses_a_tampered_release_and_names_cells_not_values(tmp_path: Path) -> None:
    counts = counts_of(_demo_like_network(), tmp_path)
    result = control_release(counts, threshold=THRESHOLD)
    assert audit_release(result.tables, counts, threshold=THRESHOLD).passed

    # Show every secondary-suppressed cell again: the small ones beside them fall.
    cells = Cells.from_published(result.tables, counts)
    primary = {c for c in range(len(cells)) if (cells.truth[c] or 0) < THRESHOLD}
    for c in range(len(cells)):
        if cells.hidden[c] and c not in primary and audited(cells, c):
            cells.hidden[c] = False
            cells.shown[c] = cells.truth[c]
    tampered = cells.to_tables(counts)
    findings = audit_release(tampered, counts, threshold=THRESHOLD)
    assert not findings.passed
    problems = [p for ps in findings.problems.values() for p in ps]
    assert problems and all(_LABEL.match(p) for p in problems)
    assert all(p.endswith(f"range narrower than {THRESHOLD}") for p in problems)

    # Show a small count: named, its value never printed.
    small = next(
        c for c in primary if cells.hidden[c] and audited(cells, c) and (cells.truth[c] or 0) > 0
    )
    cells.hidden[small], cells.shown[small] = False, cells.truth[small]
    findings = audit_release(cells.to_tables(counts), counts, threshold=THRESHOLD)
    below = [p for ps in findings.problems.values() for p in ps if "below the threshold" in p]
    assert below == [f"{cells.refs[small].label()}: shown below the threshold {THRESHOLD}"]


# -- releases over time -------------------------------------------------------------------


def _only(tables: dict[str, pa.Table], periods: tuple[str, ...]) -> dict[str, pa.Table]:
    import pyarrow.compute as pc

    return {
        n: t.filter(pc.is_in(t.column("period"), pa.array(periods)))
        if "period" in t.column_names
        else t
        for n, t in tables.items()
    }


def test_differencing_a_revision_cannot_single_out_a_late_person(tmp_path: Path) -> None:
    """Publish; add one person to one member's closed quarter; revise. A revision controlled
    on its own would give the person away (refused by the audit); controlled together with
    the first release, no change they made can be told from no change."""
    from transforms.disclosure import EarlierRelease

    rows = _demo_like_network()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    before = counts_of(rows, tmp_path / "a")
    first = control_release(before, threshold=THRESHOLD)
    late = [
        Activity("2025-Q1", "engagement", "org1", "late", "employment", None, None, "M15"),
        Activity(
            "2025-Q1", "outcome", "org1", "late", "employment", "job_started", "achieved", "M15"
        ),
    ]
    after = _only(counts_of(rows + late, tmp_path / "b"), ("2025-Q1",))
    history = [EarlierRelease("v1", first.tables, before, ("2025-Q1",))]

    naive = control_release(after, threshold=THRESHOLD)
    findings = audit_release(naive.tables, after, threshold=THRESHOLD, history=history)
    told = [p for ps in findings.problems.values() for p in ps]
    assert told and all("change since v1" in p and "added or removed" in p for p in told)
    assert any(
        "area=M15, outcome_area=employment, outcome_code=all).people_engaged" in p for p in told
    )

    revision = control_release(after, threshold=THRESHOLD, history=history)
    assert audit_release(revision.tables, after, threshold=THRESHOLD, history=history).passed
    reader = [EarlierRelease("v1", first.tables, None, ("2025-Q1",))]
    ranges = reader_attack(revision.tables, threshold=THRESHOLD, history=reader)
    person = [
        label
        for label in ranges
        if "change since v1" in label
        and "outcome_area=employment" in label
        and ("area=M15," in label or "area=all," in label)
        and ("outcome_code=all)" in label or "outcome_code=job_started)" in label)
        and label.endswith((".people_engaged", ".people_achieving", ".engagements"))
    ]
    assert len(person) == 10
    for label in person:
        lo, hi = ranges[label]
        assert lo <= 0 <= hi and hi - lo >= THRESHOLD, label
