"""An independent oracle: the published figures the demo should produce, computed by hand.

The hub counts with SQL over DuckDB; this module counts the same things from
``sample_data/truth.json`` in plain Python (dicts and sets, no SQL), straight from the written
definitions, so a bug in the SQL and a bug here would have to be the same bug to go unnoticed.
Figures are before disclosure control.

Definitions (see ../shared/DESIGN.md):

- Linkage: a consenting record links across members with every record sharing its key
  (given name and family name lower-cased with whitespace collapsed, and birth date); a record
  without consent links only within its own member on the same key; a record lacking any of
  the three is a person of its own. A person is one such cluster.
- A person's area is their postcode's outward code (upper case), or ``unknown``.
- Periods are calendar quarters from the earliest to the latest engagement start/end,
  delivery or outcome date.
- An engagement counts unless its status is ``applied``; it is active in a quarter when it
  starts on or before the quarter's end and has no end or ends on or after its start.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

TRUTH_PATH = Path(__file__).resolve().parent.parent / "sample_data" / "truth.json"

Truth = dict[str, Any]
PersonId = tuple[Any, ...]


def load_truth(truth: Truth | Path | str | None = None) -> Truth:
    """The truth as a dict: given directly, read from a path, or the demo's own file."""
    if isinstance(truth, dict):
        return truth
    path = Path(truth) if truth is not None else TRUTH_PATH
    return json.loads(path.read_text(encoding="utf-8"))


def _norm(name: str | None) -> str:
    return " ".join((name or "").split()).lower()


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _quarter(day: date) -> tuple[int, int]:
    return day.year, (day.month - 1) // 3 + 1


def _quarter_span(year: int, quarter: int) -> tuple[date, date]:
    start = date(year, 3 * quarter - 2, 1)
    following = date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)
    return start, following - timedelta(days=1)


def expected_person_clusters(
    truth: Truth | Path | str | None = None,
) -> dict[tuple[str, str], PersonId]:
    """(org_id, source_id) -> the person (cluster) the record belongs to."""
    truth = load_truth(truth)
    clusters: dict[tuple[str, str], PersonId] = {}
    for org, member in truth["members"].items():
        for p in member["people"]:
            given, family, born = _norm(p["given_name"]), _norm(p["family_name"]), p["birth_date"]
            if not given or not family or not born:
                person: PersonId = ("record", org, p["source_id"])
            elif p["consent"]:
                person = ("shared", given, family, born)
            else:
                person = ("member", org, given, family, born)
            clusters[(org, p["source_id"])] = person
    return clusters


def expected_people_count(truth: Truth | Path | str | None = None) -> int:
    """Distinct people over all members."""
    return len(set(expected_person_clusters(truth).values()))


def expected_cross_member_people(truth: Truth | Path | str | None = None) -> int:
    """People whose records come from more than one member."""
    orgs: dict[PersonId, set[str]] = defaultdict(set)
    for (org, _), person in expected_person_clusters(truth).items():
        orgs[person].add(org)
    return sum(1 for members in orgs.values() if len(members) > 1)


def expected_quarantine(truth: Truth | Path | str | None = None) -> list[dict[str, Any]]:
    """Every row the hub must reject, warn about or skip, over all members."""
    truth = load_truth(truth)
    rows: list[dict[str, Any]] = []
    for org, member in truth["members"].items():
        rows.extend({**q, "org_id": org} for q in member["quarantine"])
    return rows


@dataclass(frozen=True)
class _Event:
    """One counted thing in one quarter: who, at which member, towards which outcome area."""

    period: str
    kind: str  # engagement | delivery | outcome
    org: str
    person: PersonId
    outcome_area: str
    outcome_code: str | None
    status: str | None


def _areas(truth: Truth, clusters: dict[tuple[str, str], PersonId]) -> dict[PersonId, str]:
    """Each person's district: from the first of their records (by member, id) with one."""
    area: dict[PersonId, str] = {}
    for org in sorted(truth["members"]):
        for p in sorted(truth["members"][org]["people"], key=lambda r: r["source_id"]):
            person = clusters[(org, p["source_id"])]
            postcode = (p.get("postcode") or "").strip()
            if postcode and area.get(person, "unknown") == "unknown":
                area[person] = postcode.split()[0].upper()
            area.setdefault(person, "unknown")
    return area


def _periods(truth: Truth) -> list[tuple[str, date, date]]:
    days: list[date] = []
    for member in truth["members"].values():
        for e in member["engagements"]:
            days += [d for d in (_day(e["start_date"]), _day(e["end_date"])) if d]
        days += [_day(d["delivered_on"]) for d in member["deliveries"]]
        days += [_day(o["measured_on"]) for o in member["outcomes"]]
    days = [d for d in days if d]
    if not days:
        return []
    year, quarter = _quarter(min(days))
    last = _quarter(max(days))
    out = []
    while (year, quarter) <= last:
        start, end = _quarter_span(year, quarter)
        out.append((f"{year}-Q{quarter}", start, end))
        year, quarter = (year + 1, 1) if quarter == 4 else (year, quarter + 1)
    return out


def _events(truth: Truth) -> tuple[list[_Event], dict[PersonId, str]]:
    clusters = expected_person_clusters(truth)
    areas = _areas(truth, clusters)
    periods = _periods(truth)
    taxonomy: dict[str, str] = truth["taxonomy"]
    events: list[_Event] = []

    def period_of(day: date) -> str:
        return next(label for label, start, end in periods if start <= day <= end)

    for org, member in truth["members"].items():
        programme_area: dict[str, str] = member["programmes"]
        for e in member["engagements"]:
            if e["status"] == "applied":
                continue
            start, end = _day(e["start_date"]), _day(e["end_date"])
            person = clusters[(org, e["person_source_id"])]
            for label, q_start, q_end in periods:
                if start <= q_end and (end is None or end >= q_start):
                    events.append(
                        _Event(
                            label,
                            "engagement",
                            org,
                            person,
                            programme_area[e["programme"]],
                            None,
                            None,
                        )
                    )
        for d in member["deliveries"]:
            events.append(
                _Event(
                    period_of(_day(d["delivered_on"])),
                    "delivery",
                    org,
                    clusters[(org, d["person_source_id"])],
                    programme_area[d["programme"]],
                    None,
                    None,
                )
            )
        for o in member["outcomes"]:
            events.append(
                _Event(
                    period_of(_day(o["measured_on"])),
                    "outcome",
                    org,
                    clusters[(org, o["person_source_id"])],
                    taxonomy[o["outcome_code"]],
                    o["outcome_code"],
                    o["status"],
                )
            )
    return events, areas


def _shipped_taxonomy() -> dict[str, str]:
    """Outcome code -> outcome area of the taxonomy the hub ships (the grid's codes), read
    from the YAML file itself."""
    import yaml

    path = Path(__file__).resolve().parent.parent / "connectors" / "taxonomy.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {
        code: area
        for area, spec in data["outcome_areas"].items()
        for code in (spec.get("outcomes") or {})
    }


def _published_areas(
    events: list[_Event], areas: dict[PersonId, str], threshold: int
) -> tuple[dict[tuple[str, PersonId], str], dict[str, set[str]]]:
    """Each (period, person)'s published area, and the areas each period shows.

    A district is named in a period only when at least ``threshold`` distinct people from it
    were counted in that period; its people are otherwise in ``other``. ``other``,
    ``unknown`` and ``all`` are shown in every period.
    """
    people: dict[tuple[str, str], set[PersonId]] = defaultdict(set)
    for ev in events:
        people[(ev.period, areas[ev.person])].add(ev.person)
    placed: dict[tuple[str, PersonId], str] = {}
    shown: dict[str, set[str]] = defaultdict(lambda: {"other", "unknown", "all"})
    for ev in events:
        area = areas[ev.person]
        if area != "unknown" and len(people[(ev.period, area)]) < threshold:
            area = "other"
        placed[(ev.period, ev.person)] = area
        shown[ev.period].add(area)
    return placed, shown


def expected_outcomes_summary(
    truth: Truth | Path | str | None = None, *, threshold: int = 5
) -> dict[tuple, dict]:
    """(period, area, outcome_area, outcome_code) -> the row's counts, before suppression.

    ``area`` is a named district, ``other``, ``unknown`` or ``all``; ``outcome_code`` is a
    code or ``all``. Every period has a row for each area it shows times each outcome area
    and code of the taxonomy (zeros included); ``organisations`` is given on ``all`` area
    rows only.
    """
    truth = load_truth(truth)
    events, areas = _events(truth)
    placed, shown = _published_areas(events, areas, threshold)
    taxonomy: dict[str, str] = {**_shipped_taxonomy(), **truth["taxonomy"]}
    groups: dict[tuple, list[_Event]] = defaultdict(list)
    for ev in events:
        for area in (placed[(ev.period, ev.person)], "all"):
            groups[(ev.period, area, ev.outcome_area, "all")].append(ev)
            if ev.kind == "outcome":
                groups[(ev.period, area, ev.outcome_area, ev.outcome_code)].append(ev)
    grid = [(oa, code) for code, oa in taxonomy.items()]
    outcome_areas = set(taxonomy.values()) | {ev.outcome_area for ev in events}
    grid += [(oa, "all") for oa in sorted(outcome_areas)]
    rows: dict[tuple, dict] = {}
    for period, _, _ in _periods(truth):
        for area in sorted(shown[period]):
            for outcome_area, code in grid:
                key = (period, area, outcome_area, code)
                group = groups.get(key, [])
                achieving = len(
                    {ev.person for ev in group if ev.kind == "outcome" and ev.status == "achieved"}
                )
                row = {
                    "organisations": len({ev.org for ev in group}) if area == "all" else None,
                    "people_engaged": len({ev.person for ev in group}),
                    "people_achieving": achieving,
                    "engagements": sum(ev.kind == "engagement" for ev in group),
                    "deliveries": sum(ev.kind == "delivery" for ev in group),
                }
                if code != "all":
                    row["engagements"] = row["deliveries"] = None
                rows[key] = row
    return dict(sorted(rows.items()))


def expected_cross_org_reach(
    truth: Truth | Path | str | None = None, *, threshold: int = 5
) -> dict[tuple, dict]:
    """(period, area) -> people served and by how many members, before suppression; a row
    for every area each period shows (see ``expected_outcomes_summary``)."""
    truth = load_truth(truth)
    events, areas = _events(truth)
    placed, shown = _published_areas(events, areas, threshold)
    members: dict[tuple[str, PersonId], set[str]] = defaultdict(set)
    for ev in events:
        members[(ev.period, ev.person)].add(ev.org)
    empty = {"people": 0, "served_by_1": 0, "served_by_2": 0, "served_by_3_plus": 0}
    rows: dict[tuple, dict] = {
        (period, area): dict(empty) for period, _, _ in _periods(truth) for area in shown[period]
    }
    for (period, person), orgs in members.items():
        for area in (placed[(period, person)], "all"):
            row = rows[(period, area)]
            row["people"] += 1
            bucket = (
                "served_by_1"
                if len(orgs) == 1
                else ("served_by_2" if len(orgs) == 2 else "served_by_3_plus")
            )
            row[bucket] += 1
    return dict(sorted(rows.items()))
