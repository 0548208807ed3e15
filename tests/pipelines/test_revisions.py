"""Releases over time: a reader holds every release, so comparing two must give nobody away.

One person is added to a member's file in a quarter already published (the review's
differencing attack). The next release repeats that quarter unchanged and says a revision is
pending; `hub publish --revise` then recounts it, controlled together with the release it
replaces, and an attacker holding both releases' CSV files cannot tell that anything changed
in any count the person touched.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.pipelines.hub_cli import hub, hub_env
from tests.pipelines.test_hub_run import _write_network
from transforms.disclosure import EarlierRelease, read_release_csvs, reader_attack

pytestmark = pytest.mark.slow
THRESHOLD = 5


def _latest(releases: Path) -> Path:
    return releases / (releases / "LATEST").read_text(encoding="utf-8").strip()


def _rows(release: Path, name: str) -> list[dict[str, str]]:
    with (release / f"{name}.csv").open(encoding="utf-8", newline="") as fh:
        return sorted(csv.DictReader(fh), key=lambda r: sorted(r.items()))


def _append(path: Path, row: list[str]) -> None:
    with path.open("a", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerow(row)


def _package(release: Path) -> dict:
    return json.loads((release / "datapackage.json").read_text(encoding="utf-8"))


def test_a_late_person_changes_nothing_until_a_revision_that_hides_them(tmp_path: Path) -> None:
    members = _write_network(tmp_path)
    env = hub_env(tmp_path, members)
    releases = tmp_path / "hub" / "releases"
    done = hub(["run"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    first = _latest(releases)
    assert [p["status"] for p in _package(first)["disclosureControl"]["periods"]] == ["new"]

    # A late record for 2025-Q1: one more person at alpha, engaged and achieving.
    data = tmp_path / "data" / "alpha"
    _append(data / "alpha_people.csv", ["A99", "Late", "Comer", "02/02/1990", "M14 4ZZ", "No"])
    _append(data / "alpha_engagements.csv", ["A99", "Tenancy Support", "Open", "12/01/2025"])
    _append(data / "alpha_outcomes.csv", ["A99", "Tenancy sustained", "Achieved", "20/03/2025"])
    done = hub(["run"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    second = _latest(releases)
    assert second != first
    # The frozen quarter is repeated exactly: comparing the releases shows nothing.
    for name in ("outcomes_summary", "cross_org_reach"):
        assert _rows(second, name) == _rows(first, name)
    control = _package(second)["disclosureControl"]
    assert control["pendingRevisions"] == ["2025-Q1"]
    assert [(p["period"], p["status"], p["valuesFrom"]) for p in control["periods"]] == [
        ("2025-Q1", "carried", first.name)
    ]

    # The revision recounts the quarter; controlled together with the first release.
    done = hub(["publish", "--revise", "2025-Q1"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    third = _latest(releases)
    control = _package(third)["disclosureControl"]
    assert [(p["period"], p["status"]) for p in control["periods"]] == [("2025-Q1", "revised")]
    assert control["pendingRevisions"] == []
    # An attacker with both releases' CSV files: no change the person made can be
    # told from no change.
    earlier = EarlierRelease(first.name, read_release_csvs(first), None, ("2025-Q1",))
    ranges = reader_attack(read_release_csvs(third), threshold=THRESHOLD, history=[earlier])
    changes = {label: r for label, r in ranges.items() if "change since" in label}
    assert changes
    # A figure shown in both releases and unchanged says only that: (0, 0). Every other
    # change might be 0 or might be a handful of people, and nothing tells which.
    told = {
        label: (lo, hi)
        for label, (lo, hi) in changes.items()
        if (lo, hi) != (0, 0) and not (lo <= 0 <= hi and hi - lo >= THRESHOLD)
    }
    assert not told
    touched = [
        label
        for label in changes
        if "area=all, outcome_area=housing, outcome_code=" in label
        and ("outcome_code=all)" in label or "outcome_code=tenancy_sustained)" in label)
        and label.endswith((".people_engaged", ".people_achieving", ".engagements"))
    ]
    assert len(touched) == 5  # the area and the code row; engagements on the area row only
    assert all(changes[label] != (0, 0) for label in touched)
    counts = {label: r for label, r in ranges.items() if label not in changes}
    assert counts and not [label for label, (lo, hi) in counts.items() if hi - lo < THRESHOLD]

    # A quarter never published cannot be revised; the reason is printed.
    done = hub(["publish", "--revise", "2024-Q4"], env)
    assert done.returncode == 3 and "has not been published" in done.stdout
    done = hub(["publish", "--revise", "spring"], env)
    assert done.returncode == 2 and "2025-Q2" in done.stdout
