"""The demo data, its truth file and the oracle that turns the truth into published figures.

The oracle is checked first on a network small enough to count by hand (the expected numbers
are literals worked out on paper, not oracle output), so that when the hub's figures are
compared with the oracle's on the full demo, a disagreement points at the hub.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from openpyxl import load_workbook

from connectors.members import Member, load_member, normalise_label
from connectors.taxonomy import load_taxonomy
from tests import oracle

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"
ORGS = ("northside_housing", "riverside_food", "eastgate_skills")  # the spreadsheet members
SALESFORCE_ORG = "southbank_advice"
CIVICRM_ORG = "harbour_wellbeing"
CRM_ORGS = (SALESFORCE_ORG, CIVICRM_ORG)


def _generator() -> ModuleType:
    """Import sample_data/generate.py (a script, not a package) for its tables of labels."""
    name = "sample_data_generate"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SAMPLE / "generate.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# ------------------------------------------------------------------------------------------
# The oracle on a hand-counted network
# ------------------------------------------------------------------------------------------


def _people(org: str, rows: list[tuple]) -> list[dict[str, Any]]:
    return [
        {
            "org_id": org,
            "source_id": i,
            "given_name": g,
            "family_name": f,
            "birth_date": b,
            "postcode": pc,
            "consent": c,
        }
        for i, g, f, b, pc, c in rows
    ]


def _eng(rows: list[tuple]) -> list[dict[str, Any]]:
    return [
        {
            "source_id": i,
            "person_source_id": p,
            "programme": prog,
            "status": s,
            "start_date": a,
            "end_date": b,
        }
        for i, p, prog, s, a, b in rows
    ]


def _del(rows: list[tuple]) -> list[dict[str, Any]]:
    return [
        {"source_id": i, "person_source_id": p, "programme": prog, "delivered_on": on}
        for i, p, prog, on in rows
    ]


def _out(rows: list[tuple]) -> list[dict[str, Any]]:
    return [
        {
            "source_id": i,
            "person_source_id": p,
            "programme": prog,
            "outcome_code": code,
            "status": s,
            "measured_on": on,
        }
        for i, p, prog, code, s, on in rows
    ]


# People: P1 = A1+B1+C1 (consenting, names differ only in case and spacing); P2 = A2+A6
# (no consent, same member, same key); P3 = A3 and P7 = B3 (no birth date: never linked);
# P4, P5 = A4, A5 (twins); P6 = B2 (A2's namesake, but A2 did not consent); P8 = B4 (no
# postcode -> unknown). A2's only engagement is 'applied', so it never counts.
TINY: dict[str, Any] = {
    "taxonomy": {
        "tenancy_sustained": "housing",
        "debt_reduced": "financial_inclusion",
        "felt_listened_to": "experience",
    },
    "members": {
        "a": {
            "programmes": {"Tenancy": "housing"},
            "people": _people(
                "a",
                [
                    ("A1", "Ada", "Okafor", "1980-01-01", "M14 4AA", True),
                    ("A2", "Ben", "Silva", "1981-02-02", "M14 4AB", False),
                    ("A3", "Cy", "Nowak", None, "M15 5BB", True),
                    ("A4", "Di", "Twin", "1990-05-05", "M14 4AA", True),
                    ("A5", "Ed", "Twin", "1990-05-05", "M14 4AA", True),
                    ("A6", " BEN", "Silva", "1981-02-02", "m14 4ab", False),
                ],
            ),
            "engagements": _eng(
                [
                    ("EA1", "A1", "Tenancy", "active", "2025-01-10", None),
                    ("EA2", "A2", "Tenancy", "applied", "2025-02-01", None),
                    ("EA3", "A3", "Tenancy", "completed", "2025-01-05", "2025-02-20"),
                    ("EA4", "A4", "Tenancy", "withdrawn", "2025-03-01", "2025-04-15"),
                ]
            ),
            "deliveries": _del(
                [
                    ("DA1", "A1", "Tenancy", "2025-02-01"),
                    ("DA2", "A1", "Tenancy", "2025-02-15"),
                    ("DA3", "A5", "Tenancy", "2025-05-01"),
                    ("DA4", "A6", "Tenancy", "2025-05-05"),
                ]
            ),
            "outcomes": _out(
                [
                    ("OA1", "A1", "Tenancy", "tenancy_sustained", "achieved", "2025-03-01"),
                    ("OA2", "A3", "Tenancy", "tenancy_sustained", "progressing", "2025-02-20"),
                    ("OA3", "A1", "Tenancy", "felt_listened_to", "achieved", "2025-04-02"),
                ]
            ),
            "quarantine": [
                {
                    "entity": "service_delivery",
                    "file": "a/sessions.csv",
                    "sheet": None,
                    "row": 7,
                    "source_id": "DX",
                    "column": "Client",
                    "field": "person_source_id",
                    "raw_value": "A99",
                    "severity": "error",
                    "reason": "orphan",
                }
            ],
        },
        "b": {
            "programmes": {"Money": "financial_inclusion"},
            "people": _people(
                "b",
                [
                    ("B1", " ADA ", "okafor", "1980-01-01", "M14 4AA", True),
                    ("B2", "Ben", "SILVA", "1981-02-02", "M14 4AB", True),
                    ("B3", "Cy", "Nowak", None, "M15 5BB", True),
                    ("B4", "Fay", "Lee", "1970-01-01", None, False),
                ],
            ),
            "engagements": _eng(
                [
                    ("EB1", "B1", "Money", "completed", "2025-02-01", "2025-03-31"),
                    ("EB2", "B2", "Money", "active", "2025-04-01", None),
                ]
            ),
            "deliveries": _del(
                [
                    ("DB1", "B4", "Money", "2025-06-30"),
                    ("DB2", "B1", "Money", "2025-04-20"),
                ]
            ),
            "outcomes": _out(
                [
                    ("OB1", "B1", None, "debt_reduced", "achieved", "2025-03-15"),
                    ("OB2", "B2", None, "debt_reduced", "not_achieved", "2025-05-01"),
                    ("OB3", "B1", None, "felt_listened_to", "achieved", "2025-03-31"),
                ]
            ),
            "quarantine": [],
        },
        "c": {
            "programmes": {"Kitchen": "social_connection"},
            "people": _people("c", [("C1", "ada", "OKAFOR", "1980-01-01", "M14 4AA", True)]),
            "engagements": [],
            "deliveries": _del([("DC1", "C1", "Kitchen", "2025-03-03")]),
            "outcomes": _out(
                [
                    ("OC1", "C1", "Kitchen", "felt_listened_to", "achieved", "2025-03-20"),
                ]
            ),
            "quarantine": [],
        },
    },
}


def _area_row(
    orgs: int, engaged: int, achieving: int, engagements: int, deliveries: int
) -> dict[str, Any]:
    return {
        "organisations": orgs,
        "people_engaged": engaged,
        "people_achieving": achieving,
        "engagements": engagements,
        "deliveries": deliveries,
    }


def _code_row(orgs: int, engaged: int, achieving: int) -> dict[str, Any]:
    return {
        "organisations": orgs,
        "people_engaged": engaged,
        "people_achieving": achieving,
        "engagements": None,
        "deliveries": None,
    }


def _reach(people: int, by1: int, by2: int, by3: int) -> dict[str, int]:
    return {"people": people, "served_by_1": by1, "served_by_2": by2, "served_by_3_plus": by3}


def test_oracle_people_and_linkage_by_hand() -> None:
    clusters = oracle.expected_person_clusters(TINY)
    assert clusters[("a", "A1")] == clusters[("b", "B1")] == clusters[("c", "C1")]
    assert clusters[("a", "A2")] == clusters[("a", "A6")]  # no consent: linked within a
    assert clusters[("a", "A2")] != clusters[("b", "B2")]  # ... but never across members
    assert clusters[("a", "A3")] != clusters[("b", "B3")]  # no birth date: never linked
    assert clusters[("a", "A4")] != clusters[("a", "A5")]  # twins stay two people
    assert oracle.expected_people_count(TINY) == 8
    assert oracle.expected_cross_member_people(TINY) == 1


def test_oracle_outcomes_summary_by_hand() -> None:
    h, f, e, s = "housing", "financial_inclusion", "experience", "social_connection"
    expected = {
        ("2025-Q1", "M14", h, "all"): _area_row(1, 2, 1, 2, 2),
        ("2025-Q1", "M15", h, "all"): _area_row(1, 1, 0, 1, 0),
        ("2025-Q1", "all", h, "all"): _area_row(1, 3, 1, 3, 2),
        ("2025-Q1", "M14", h, "tenancy_sustained"): _code_row(1, 1, 1),
        ("2025-Q1", "M15", h, "tenancy_sustained"): _code_row(1, 1, 0),
        ("2025-Q1", "all", h, "tenancy_sustained"): _code_row(1, 2, 1),
        ("2025-Q1", "M14", f, "all"): _area_row(1, 1, 1, 1, 0),
        ("2025-Q1", "all", f, "all"): _area_row(1, 1, 1, 1, 0),
        ("2025-Q1", "M14", f, "debt_reduced"): _code_row(1, 1, 1),
        ("2025-Q1", "all", f, "debt_reduced"): _code_row(1, 1, 1),
        # P1 felt listened to at b and at c: two members, one person.
        ("2025-Q1", "M14", e, "all"): _area_row(2, 1, 1, 0, 0),
        ("2025-Q1", "all", e, "all"): _area_row(2, 1, 1, 0, 0),
        ("2025-Q1", "M14", e, "felt_listened_to"): _code_row(2, 1, 1),
        ("2025-Q1", "all", e, "felt_listened_to"): _code_row(2, 1, 1),
        ("2025-Q1", "M14", s, "all"): _area_row(1, 1, 0, 0, 1),
        ("2025-Q1", "all", s, "all"): _area_row(1, 1, 0, 0, 1),
        # Q2: A1 still open, A4 ends 15 April, A5 and A6 sessions; A2 (applied) never counts.
        ("2025-Q2", "M14", h, "all"): _area_row(1, 4, 0, 2, 2),
        ("2025-Q2", "all", h, "all"): _area_row(1, 4, 0, 2, 2),
        ("2025-Q2", "M14", f, "all"): _area_row(1, 2, 0, 1, 1),
        ("2025-Q2", "unknown", f, "all"): _area_row(1, 1, 0, 0, 1),
        ("2025-Q2", "all", f, "all"): _area_row(1, 3, 0, 1, 2),
        ("2025-Q2", "M14", f, "debt_reduced"): _code_row(1, 1, 0),
        ("2025-Q2", "all", f, "debt_reduced"): _code_row(1, 1, 0),
        ("2025-Q2", "M14", e, "all"): _area_row(1, 1, 1, 0, 0),
        ("2025-Q2", "all", e, "all"): _area_row(1, 1, 1, 0, 0),
        ("2025-Q2", "M14", e, "felt_listened_to"): _code_row(1, 1, 1),
        ("2025-Q2", "all", e, "felt_listened_to"): _code_row(1, 1, 1),
    }
    # Threshold 1 names every district; the zero rows of the full grid are checked in
    # tests/transforms, and organisations is given on 'all' area rows only.
    for key, row in expected.items():
        if key[1] != "all":
            row["organisations"] = None
    got = oracle.expected_outcomes_summary(TINY, threshold=1)
    assert {k: v for k, v in got.items() if v["people_engaged"]} == expected


def test_oracle_cross_org_reach_by_hand() -> None:
    got = oracle.expected_cross_org_reach(TINY, threshold=1)
    assert {k: v for k, v in got.items() if v["people"]} == {
        ("2025-Q1", "M14"): _reach(2, 1, 0, 1),  # P1 served by a, b and c; P4 by a
        ("2025-Q1", "M15"): _reach(1, 1, 0, 0),
        ("2025-Q1", "all"): _reach(3, 2, 0, 1),
        ("2025-Q2", "M14"): _reach(5, 4, 1, 0),  # P1 by a and b; P2, P4, P5, P6 by one
        ("2025-Q2", "all"): _reach(6, 5, 1, 0),
        ("2025-Q2", "unknown"): _reach(1, 1, 0, 0),
    }


def test_oracle_quarantine_carries_the_member() -> None:
    rows = oracle.expected_quarantine(TINY)
    assert [(r["org_id"], r["source_id"], r["reason"]) for r in rows] == [("a", "DX", "orphan")]


def test_oracle_periods_run_from_first_to_last_date() -> None:
    """An open engagement counts in every quarter up to the last dated activity."""
    tiny = {
        "taxonomy": {},
        "members": {
            "a": {
                "programmes": {"P": "housing"},
                "people": _people("a", [("A1", "Ada", "Okafor", "1980-01-01", "M14 4AA", True)]),
                "engagements": _eng([("E1", "A1", "P", "active", "2024-12-30", None)]),
                "deliveries": _del([("D1", "A1", "P", "2025-07-01")]),
                "outcomes": [],
                "quarantine": [],
            }
        },
    }
    reach = oracle.expected_cross_org_reach(tiny)
    assert sorted(k[0] for k in reach if k[1] == "all") == [
        "2024-Q4",
        "2025-Q1",
        "2025-Q2",
        "2025-Q3",
    ]


# ------------------------------------------------------------------------------------------
# The generator and the member configs
# ------------------------------------------------------------------------------------------


def _run_generator(out: Path) -> None:
    subprocess.run(
        [sys.executable, str(SAMPLE / "generate.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_generator_is_deterministic_and_matches_committed_files(tmp_path: Path) -> None:
    _run_generator(tmp_path / "one")
    _run_generator(tmp_path / "two")
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert one.keys() == two.keys() and len(one) == 12
    assert all(one[name] == two[name] for name in one)
    committed = {name: (SAMPLE / name).read_bytes() for name in one}
    stale = [name for name in one if committed[name] != one[name]]
    assert not stale, f"re-run python sample_data/generate.py: {stale} are out of date"


@pytest.fixture(scope="module")
def members() -> dict[str, Member]:
    return {org: load_member(ROOT / "members" / f"{org}.yaml") for org in ORGS}


@pytest.fixture(scope="module")
def truth() -> dict[str, Any]:
    return oracle.load_truth()


def test_member_yamls_load_and_point_at_the_files(members: dict[str, Member]) -> None:
    for org, member in members.items():
        assert member.org_id == org
        assert member.connector.kind == "spreadsheet"
        assert member.connector.phone_region == "GB"
        assert member.sharing.consent == "per_record"
        assert set(member.connector.tables) == {
            "person",
            "engagement",
            "service_delivery",
            "outcome",
        }
        for table in member.connector.tables.values():
            assert member.resolve(table.file).is_file()
    assert members["northside_housing"].connector.date_order == "day_first"
    assert members["riverside_food"].connector.date_order == "day_first"
    assert members["eastgate_skills"].connector.date_order == "month_first"


def test_member_yamls_map_every_header_and_label_the_files_use(
    members: dict[str, Member], truth: dict[str, Any]
) -> None:
    gen = _generator()
    for org, member in members.items():
        for entity, table in member.connector.tables.items():
            written = {f: normalise_label(h) for f, h in gen.HEADERS[org][entity] if f}
            mapped = {f: normalise_label(h) for f, h in table.columns.items()}
            assert mapped == written, (org, entity)
            if table.sheet:
                assert table.sheet == gen.SHEETS[entity]
        spec = gen.SPECS[org]
        m = member.mappings
        assert m.programmes == truth["members"][org]["programmes"]
        assert {normalise_label(k): v for k, v in m.outcomes.items()} == {
            normalise_label(k): v for k, v in spec.outcome_labels().items()
        }
        assert {normalise_label(k): v for k, v in m.engagement_status.items()} == {
            normalise_label(v): k for k, v in spec.engagement_status.items()
        }
        assert {normalise_label(k): v for k, v in m.outcome_status.items()} == {
            normalise_label(v): k for k, v in spec.outcome_status.items()
        }
        # The deliberately unmapped labels really are unmapped.
        labels = {normalise_label(k) for k in [*m.outcomes, *m.engagement_status]}
        for q in truth["members"][org]["quarantine"]:
            if q["reason"].startswith("unmapped_"):
                assert normalise_label(q["raw_value"]) not in labels


def test_truth_uses_only_taxonomy_values(truth: dict[str, Any]) -> None:
    taxonomy = load_taxonomy()
    assert all(taxonomy.outcomes[code] == area for code, area in truth["taxonomy"].items())
    for member in truth["members"].values():
        assert set(member["programmes"].values()) <= set(taxonomy.areas)
        assert {e["status"] for e in member["engagements"]} <= set(taxonomy.engagement_statuses)
        assert {o["status"] for o in member["outcomes"]} <= set(taxonomy.outcome_statuses)


# ------------------------------------------------------------------------------------------
# The demo's shape: volumes, linkage cases, messy rows, publishable cells
# ------------------------------------------------------------------------------------------


def _key(p: dict[str, Any]) -> tuple[str, str, str]:
    return (
        " ".join(p["given_name"].split()).lower(),
        " ".join(p["family_name"].split()).lower(),
        p["birth_date"],
    )


def test_demo_volumes_and_linkage_cases(truth: dict[str, Any]) -> None:
    # The spreadsheet members' own linkage cases (the Salesforce member is checked below).
    people = [p for org in ORGS for p in truth["members"][org]["people"]]
    for org in ORGS:
        assert 240 <= len(truth["members"][org]["people"]) <= 260
    orgs_by_key: dict[tuple, set[str]] = defaultdict(set)
    for p in people:
        if p["birth_date"]:
            orgs_by_key[_key(p)].add(p["org_id"])
    spread = Counter(len(orgs) for orgs in orgs_by_key.values())
    assert spread[3] == 20 and spread[2] == 60
    no_consent = [p for p in people if not p["consent"]]
    assert 0.05 <= len(no_consent) / len(people) <= 0.11
    assert sum(1 for p in no_consent if len(orgs_by_key[_key(p)]) > 1) >= 3
    # Shared people are written differently (case, spacing) but with identical accents.
    written = defaultdict(set)
    for p in people:
        if p["birth_date"] and len(orgs_by_key[_key(p)]) > 1:
            written[_key(p)].add((p["given_name"], p["family_name"]))
    assert sum(1 for forms in written.values() if len(forms) > 1) >= 30
    assert any(k[0] in {"zoë", "siân", "josé", "chloé"} for k in written)
    # Twins: same family name, birth date and postcode, different given names; two people.
    clusters = oracle.expected_person_clusters(truth)
    by_household = defaultdict(list)
    for p in people:
        by_household[(p["family_name"].strip().lower(), p["birth_date"], p["postcode"])].append(p)
    twins = [
        ps
        for ps in by_household.values()
        if len({" ".join(p["given_name"].split()).lower() for p in ps}) > 1
    ]
    assert len(twins) >= 3
    for ps in twins:
        assert len({clusters[(p["org_id"], p["source_id"])] for p in ps}) > 1
    assert any(p["postcode"] is None for p in people)
    assert any(p["birth_date"] is None for p in people)
    assert 800 <= oracle.expected_people_count() <= 900  # five members, 1,020 records
    assert oracle.expected_cross_member_people() >= 80


def test_demo_messy_rows_are_few_and_named(truth: dict[str, Any]) -> None:
    rows = oracle.expected_quarantine()
    per_member = Counter(r["org_id"] for r in rows)
    assert all(2 <= per_member[org] <= 5 for org in (*ORGS, *CRM_ORGS))
    reasons = {r["reason"] for r in rows}
    assert reasons == {
        "missing_id",
        "duplicate_id",
        "invalid_date",
        "invalid_phone",
        "invalid_email",
        "unmapped_status",
        "unmapped_outcome",
        "orphan",
        "totals_row",
        "absent",
        "not_on_a_case",
    }
    for r in rows:
        assert r["severity"] in {"error", "warning", "skipped"}
        assert r["file"] and r["column"]
        if r["org_id"] in CRM_ORGS:  # a record, named by its object, id and field
            assert r["row"] is None and r["source_id"] and r["field"] == r["column"]
        else:
            assert r["row"] >= 2


def test_demo_has_publishable_and_suppressible_cells() -> None:
    summary = oracle.expected_outcomes_summary()
    cells = [v["people_engaged"] for k, v in summary.items() if k[3] != "all" and k[1] != "all"]
    assert sum(n >= 5 for n in cells) >= 30
    assert sum(0 < n < 5 for n in cells) >= 10
    periods = {k[0] for k in summary}
    assert periods == {"2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4"}
    areas = {k[1] for k in summary}
    assert {"M14", "M15", "M16", "M20", "M21", "unknown", "all"} <= areas
    reach = oracle.expected_cross_org_reach()
    assert any(v["served_by_3_plus"] for v in reach.values())


# ------------------------------------------------------------------------------------------
# The files really have their quirks, and agree with truth.json row by row
# ------------------------------------------------------------------------------------------


def _read_csv(path: Path, encoding: str, delimiter: str) -> list[list[str]]:
    with path.open(encoding=encoding, newline="") as handle:
        return list(csv.reader(handle, delimiter=delimiter))


def test_northside_is_utf8_with_bom_and_day_first() -> None:
    raw = (SAMPLE / "northside_housing" / "people.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = _read_csv(SAMPLE / "northside_housing" / "people.csv", "utf-8-sig", ",")
    assert rows[0][0] == "Client Ref" and rows[0][-1] == "Consent to share"
    assert {r[-1] for r in rows[1:]} == {"Yes", "No"}
    assert any(int(r[3][:2]) > 12 for r in rows[1:] if r[3])  # dd/mm, not mm/dd
    sessions = _read_csv(SAMPLE / "northside_housing" / "sessions.csv", "utf-8-sig", ",")
    assert any(r[4] == "31/02/2025" for r in sessions)


def test_eastgate_is_cp1252_semicolons_and_month_first() -> None:
    raw = (SAMPLE / "eastgate_skills" / "people.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = raw.decode("cp1252")
    for name in ("Zoë", "Siân", "José", "Chloé"):
        assert name in text
    header = text.splitlines()[0]
    assert header.split(";")[0] == "  client ID " and "DATE OF BIRTH" in header
    assert "," not in header and header.count(";") == 7
    rows = _read_csv(SAMPLE / "eastgate_skills" / "people.csv", "cp1252", ";")
    dobs = [r[3] for r in rows[1:] if r[3]]
    assert any(int(d[3:5]) > 12 for d in dobs)  # mm/dd: the day is second
    assert all(int(d[:2]) <= 12 for d in dobs)


def test_riverside_workbook_layout() -> None:
    wb = load_workbook(SAMPLE / "riverside_food" / "riverside_food_network.xlsx")
    assert wb.sheetnames == ["Clients", "Referrals", "Visits", "Outcomes"]
    clients = wb["Clients"]
    assert "Riverside" in clients["A1"].value and clients["A2"].value
    assert all(c.value is None for c in clients[3])
    header = [c.value for c in clients[4]]
    assert header[:3] == ["Client ID", "First Name", "Last Name"]
    first = [c.value for c in clients[5]]
    assert isinstance(first[0], str) and first[0].startswith("0") and len(first[0]) == 6
    assert isinstance(first[3], datetime)  # a real date cell
    phones = [c.value for c in clients["F"][4:] if c.value]
    assert phones and all(isinstance(p, str) and p.startswith("0") for p in phones[:-1])
    last = clients.max_row
    assert str(clients.cell(last, 1).value).lower().startswith("total")
    assert all(c.value is None for c in clients[last - 1])
    assert {c.value for c in clients["H"][4 : last - 2]} == {"Y", "N"}
    visits = wb["Visits"]
    assert isinstance(visits.cell(2, 4).value, datetime)
    recorded = wb["Outcomes"].cell(2, 5).value
    assert isinstance(recorded, str) and datetime.strptime(recorded, "%d/%m/%Y")


def _file_rows(truth: dict[str, Any], org: str, entity: str) -> dict[int, dict[str, str]]:
    """Row number -> {canonical field: raw text} for one member's file, read independently."""
    gen = _generator()
    fields = [f for f, _ in gen.HEADERS[org][entity]]
    path = SAMPLE / truth["members"][org]["files"][entity]
    out: dict[int, dict[str, str]] = {}
    if path.suffix == ".xlsx":
        ws = load_workbook(path)[gen.SHEETS[entity]]
        first = 5 if entity == "person" else 2
        for n, row in enumerate(ws.iter_rows(min_row=first, values_only=True), start=first):
            if any(v is not None for v in row):
                out[n] = {
                    f or "": (
                        ""
                        if v is None
                        else v.date().isoformat()
                        if isinstance(v, datetime)
                        else str(v)
                    )
                    for f, v in zip(fields, row, strict=False)
                }
        return out
    encoding, delimiter = ("utf-8-sig", ",") if org == "northside_housing" else ("cp1252", ";")
    for n, row in enumerate(_read_csv(path, encoding, delimiter)[1:], start=2):
        out[n] = {f or "": v for f, v in zip(fields, row, strict=True)}
    return out


@pytest.mark.parametrize("org", ORGS)
def test_truth_agrees_with_the_files_row_by_row(truth: dict[str, Any], org: str) -> None:
    member = truth["members"][org]
    lists = {
        "person": "people",
        "engagement": "engagements",
        "service_delivery": "deliveries",
        "outcome": "outcomes",
    }
    for entity, name in lists.items():
        rows = _file_rows(truth, org, entity)
        problems = [q for q in member["quarantine"] if q["entity"] == entity]
        for q in problems:  # every listed row is where truth.json says, with that value
            assert q["row"] in rows, q
            if q["field"] and q["raw_value"] is not None:
                assert rows[q["row"]][q["field"]].strip() == q["raw_value"], q
        rejected = {q["row"] for q in problems if q["severity"] in ("error", "skipped")}
        kept = [r for n, r in rows.items() if n not in rejected]
        assert len(kept) == len(member[name]), (org, entity)
        assert [r["source_id"] for r in kept] == [t["source_id"] for t in member[name]]
    ids = {p["source_id"] for p in member["people"]}
    for name in ("engagements", "deliveries", "outcomes"):
        assert all(r["person_source_id"] in ids for r in member[name])
    for q in member["quarantine"]:
        if q["reason"] == "orphan":
            assert q["raw_value"] not in ids
    for d in member["deliveries"]:
        assert date(2025, 1, 1) <= date.fromisoformat(d["delivered_on"]) <= date(2025, 12, 31)


# ------------------------------------------------------------------------------------------
# The Salesforce member: its org file agrees with truth.json record by record
# ------------------------------------------------------------------------------------------


def _org_records() -> dict[str, dict[str, dict[str, Any]]]:
    body = json.loads((SAMPLE / SALESFORCE_ORG / "salesforce_org.json").read_text("utf-8"))
    return {obj: {r["Id"]: r for r in rows} for obj, rows in body["records"].items()}


def test_salesforce_member_yaml_maps_its_org(truth: dict[str, Any]) -> None:
    member = load_member(ROOT / "members" / f"{SALESFORCE_ORG}.yaml")
    assert member.connector.kind == "salesforce_npsp"
    assert member.connector.client_secret is not None
    assert member.connector.client_secret.env == "HUB_SOUTHBANK_ADVICE_SF_SECRET"  # never inline
    spec = _generator().SALESFORCE_SPEC
    m = member.mappings
    assert m.programmes == truth["members"][SALESFORCE_ORG]["programmes"]
    assert m.outcomes == spec.outcome_labels()
    assert m.engagement_status == {v: k for k, v in spec.engagement_status.items()}
    assert m.outcome_status == {v: k for k, v in spec.outcome_status.items()}


def test_salesforce_org_file_agrees_with_truth(truth: dict[str, Any]) -> None:
    member = truth["members"][SALESFORCE_ORG]
    records = _org_records()
    problems = {q["source_id"]: q for q in member["quarantine"]}
    assert {p["source_id"] for p in member["people"]} == set(records["Contact"])
    for name, sobject in (
        ("engagements", "pmdm__ProgramEngagement__c"),
        ("deliveries", "pmdm__ServiceDelivery__c"),
        ("outcomes", "Outcome__c"),
    ):
        kept = {r["source_id"] for r in member[name]}
        assert kept | (set(problems) & set(records[sobject])) == set(records[sobject])
        assert not kept & set(problems)
    for q in member["quarantine"]:  # every listed record holds the value truth.json names
        record = next(r[q["source_id"]] for r in records.values() if q["source_id"] in r)
        assert record[q["field"]] == q["raw_value"], q
    # 40 of its clients are also known to a spreadsheet member, written their own way.
    keys = {_key(p) for org in ORGS for p in truth["members"][org]["people"] if p["birth_date"]}
    shared = [p for p in member["people"] if p["birth_date"] and _key(p) in keys]
    assert len(shared) == 40
    assert any(not p["consent"] for p in shared)


# ------------------------------------------------------------------------------------------
# The CiviCRM member: its site file agrees with truth.json record by record
# ------------------------------------------------------------------------------------------


def _site() -> dict[str, Any]:
    return json.loads((SAMPLE / CIVICRM_ORG / "civicrm_site.json").read_text("utf-8"))


def _option_name(site: dict[str, Any], options: str, value: int | None) -> str | None:
    return None if value is None else site["options"][options][str(value)][0]


def test_civicrm_member_yaml_maps_its_site(truth: dict[str, Any]) -> None:
    member = load_member(ROOT / "members" / f"{CIVICRM_ORG}.yaml")
    assert member.connector.kind == "civicrm"
    assert member.connector.api_key.env == "HUB_HARBOUR_WELLBEING_CIVI_KEY"  # never inline
    spec = _generator().CIVICRM_SPEC
    m = member.mappings
    assert m.programmes == truth["members"][CIVICRM_ORG]["programmes"]
    assert m.outcomes == spec.outcome_labels()
    assert m.engagement_status == {v: k for k, v in spec.engagement_status.items()}
    assert m.outcome_status == {v: k for k, v in spec.outcome_status.items()}
    site = _site()
    case_types = {name for name, _ in site["options"]["case_type"].values()}
    assert set(m.programmes) == case_types  # every case type the site has is mapped
    activity_types = {name for name, _ in site["options"]["activity_type"].values()}
    assert set(member.connector.delivery_activity_types) <= activity_types


def test_civicrm_site_file_agrees_with_truth(truth: dict[str, Any]) -> None:
    member = truth["members"][CIVICRM_ORG]
    site = _site()
    records = {e: {r["id"]: r for r in rows} for e, rows in site["records"].items()}
    assert {p["source_id"] for p in member["people"]} == {str(i) for i in records["Contact"]}
    clients = {f"{r['case_id']}:{r['contact_id']}" for r in records["CaseContact"].values()}
    targets = {
        f"{r['activity_id']}:{r['contact_id']}"
        for r in records["ActivityContact"].values()
        if r["record_type_id"] == 3
    }
    problems = {q["source_id"]: q for q in member["quarantine"]}
    kept = {e["source_id"] for e in member["engagements"]}
    assert kept | (set(problems) & clients) == clients and not kept & set(problems)
    activities = {r["source_id"] for r in (*member["deliveries"], *member["outcomes"])}
    assert activities | (set(problems) & targets) == targets
    for e in member["engagements"]:  # the case carries the programme and dates truth names
        case = records["Case"][int(e["source_id"].split(":")[0])]
        assert _option_name(site, "case_type", case["case_type_id"]) == e["programme"]
        assert (case["start_date"], case["end_date"]) == (e["start_date"], e["end_date"])
    for o in member["outcomes"]:
        activity = records["Activity"][int(o["source_id"].split(":")[0])]
        assert activity["activity_date_time"][:10] == o["measured_on"]
        case = records["Case"][activity["case_id"]]
        assert _option_name(site, "case_type", case["case_type_id"]) == o["programme"]
    for q in member["quarantine"]:  # every listed record holds the value truth.json names
        record_id, contact = [*q["source_id"].split(":"), None][:2]
        if q["entity"] == "person":
            phone = next(r for r in records["Phone"].values() if r["contact_id"] == int(record_id))
            assert phone["phone"] == q["raw_value"]
        elif q["entity"] == "engagement":
            case = records["Case"][int(record_id)]
            assert _option_name(site, "case_status", case["status_id"]) == q["raw_value"]
        elif q["entity"] == "service_delivery":
            assert records["Activity"][int(record_id)]["case_id"] is None
        else:
            activity = records["Activity"][int(record_id)]
            assert _option_name(site, "outcome", activity["Outcomes.outcome"]) == q["raw_value"]
        assert contact is None or int(contact) in records["Contact"]
    # 40 of its clients are also known elsewhere: to a spreadsheet member or to Southbank.
    keys = {
        _key(p)
        for org in (*ORGS, SALESFORCE_ORG)
        for p in truth["members"][org]["people"]
        if p["birth_date"]
    }
    shared = [p for p in member["people"] if p["birth_date"] and _key(p) in keys]
    assert len(shared) == 40
    assert any(not p["consent"] for p in shared)
