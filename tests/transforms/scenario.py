"""A two-member network small enough to count by hand (see the figures in the tests).

alpha (housing): people A1..A7 at M14, A7 without consent; each engaged in "Tenancy Support"
from 2025-01-10; A1..A5 achieved "Tenancy sustained", A6 is progressing.
beta (money advice): B1..B3 are A1..A3 (same name and birth date, other case and spacing),
B4 is A7's namesake (not linked: A7 has no consent), B5 and B6 live at M15. All six were
engaged in "Money Help" in Feb-Mar 2025; B1..B5 achieved "Debt reduced", B6 did not; B1..B5 had
one session each. Messy rows: an engagement with status "On hold" (unmapped) and a session
for an unknown person B99.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connectors.members import Member
from tests.transforms.rawdata import d, write_member_yaml, write_raw
from transforms.warehouse import DuckDBWarehouse, Warehouse

PEOPLE = [
    # (id, given, family, dob, postcode, consent)
    ("A1", "Ada", "Okafor", "1980-01-01", "M14 4AA", True),
    ("A2", "Ben", "Silva", "1981-02-02", "M14 4AA", True),
    ("A3", "Cara", "Nowak", "1982-03-03", "M14 4AA", True),
    ("A4", "Dev", "Patel", "1983-04-04", "M14 4AB", True),
    ("A5", "Eve", "Jones", "1984-05-05", "M14 4AB", True),
    ("A6", "Finn", "Brown", "1985-06-06", "M14 4AB", True),
    ("A7", "Gia", "Rossi", "1986-07-07", "M14 4AB", False),
]
BETA_PEOPLE = [
    ("B1", "ADA", "okafor", "1980-01-01", "M14 4AA", True),
    ("B2", " Ben ", "Silva", "1981-02-02", "M14 4AA", True),
    ("B3", "cara", "NOWAK", "1982-03-03", "M14 4AA", True),
    ("B4", "Gia", "Rossi", "1986-07-07", "M14 4AB", True),
    ("B5", "Hal", "Khan", "1990-01-01", "M15 5BB", True),
    ("B6", "Ivy", "Lee", "1991-01-01", "M15 5BB", True),
]


def _people(rows: list[tuple]) -> list[dict]:
    return [
        {
            "source_id": i,
            "given_name": g,
            "family_name": f,
            "birth_date": d(b),
            "postcode": pc,
            "consent_to_share": c,
        }
        for i, g, f, b, pc, c in rows
    ]


def build(tmp: Path, warehouse: Warehouse | None = None) -> tuple[Warehouse, dict[str, Member]]:
    """Write both members' YAML and raw tables; return the warehouse path and members."""
    db = warehouse or DuckDBWarehouse(tmp / "warehouse.duckdb")
    members_dir = tmp / "members"

    def table(org: str) -> dict[str, Any]:  # never read: raw tables are written directly
        return {"file": f"{org}/x.csv", "columns": {"source_id": "id", "consent_to_share": "c"}}

    alpha = write_member_yaml(
        members_dir,
        "alpha",
        {
            "name": "Alpha Housing",
            "connector": {"kind": "spreadsheet", "tables": {"person": table("alpha")}},
            "mappings": {
                "programmes": {"Tenancy Support": "housing"},
                "engagement_status": {"Open": "active"},
                "outcomes": {"Tenancy sustained": "tenancy_sustained"},
                "outcome_status": {"Achieved": "achieved", "In progress": "progressing"},
            },
        },
    )
    beta = write_member_yaml(
        members_dir,
        "beta",
        {
            "name": "Beta Money Advice",
            "connector": {"kind": "spreadsheet", "tables": {"person": table("beta")}},
            "mappings": {
                "programmes": {"Money Help": "financial_inclusion"},
                "engagement_status": {"Closed": "completed"},
                "outcomes": {"Debt reduced": "debt_reduced"},
                "outcome_status": {"Yes": "achieved", "No": "not_achieved"},
            },
        },
    )
    write_raw(db, "alpha", "person", _people(PEOPLE))
    write_raw(
        db,
        "alpha",
        "programme",
        [{"source_id": "Tenancy Support", "name": "Tenancy Support", "outcome_area": "housing"}],
    )
    write_raw(
        db,
        "alpha",
        "engagement",
        [
            {
                "source_id": f"E{p[0]}",
                "person_source_id": p[0],
                "programme": "tenancy  support",
                "status": "open ",
                "start_date": d("2025-01-10"),
            }
            for p in PEOPLE
        ]
        + [
            {
                "source_id": "EX",
                "person_source_id": "A1",
                "programme": "Tenancy Support",
                "status": "On hold",
                "start_date": d("2025-02-01"),
            }
        ],
    )
    write_raw(
        db,
        "alpha",
        "outcome",
        [
            {
                "source_id": f"O{p[0]}",
                "person_source_id": p[0],
                "programme": "Tenancy Support",
                "outcome": "Tenancy sustained",
                "status": "Achieved" if p[0] <= "A5" else "In progress",
                "measured_on": d("2025-03-01"),
            }
            for p in PEOPLE[:6]
        ],
    )
    write_raw(
        db,
        "alpha",
        "person_quarantine",
        [
            {
                "entity": "person",
                "source_file": "people.csv",
                "source_row": 9,
                "source_id": "A8",
                "column_name": "DOB",
                "raw_value": "31/02/1990",
                "severity": "error",
                "reason": "date 31/02/1990 does not exist",
                "rule": "date.invalid",
            },
        ],
        table="spreadsheet__person_quarantine",
        columns=__import__(
            "tests.transforms.rawdata", fromlist=["QUARANTINE_COLUMNS"]
        ).QUARANTINE_COLUMNS,
    )
    write_raw(db, "beta", "person", _people(BETA_PEOPLE))
    write_raw(
        db,
        "beta",
        "programme",
        [{"source_id": "Money Help", "name": "Money Help", "outcome_area": "financial_inclusion"}],
    )
    write_raw(
        db,
        "beta",
        "engagement",
        [
            {
                "source_id": f"E{p[0]}",
                "person_source_id": p[0],
                "programme": "Money Help",
                "status": "Closed",
                "start_date": d("2025-02-01"),
                "end_date": d("2025-03-15"),
            }
            for p in BETA_PEOPLE
        ],
    )
    write_raw(
        db,
        "beta",
        "outcome",
        [
            {
                "source_id": f"O{p[0]}",
                "person_source_id": p[0],
                "programme": None,
                "outcome": "Debt reduced",
                "status": "No" if p[0] == "B6" else "Yes",
                "measured_on": d("2025-03-10"),
            }
            for p in BETA_PEOPLE
        ],
    )
    write_raw(
        db,
        "beta",
        "service_delivery",
        [
            {
                "source_id": f"S{p[0]}",
                "person_source_id": p[0],
                "programme": "Money Help",
                "delivered_on": d("2025-02-15"),
                "quantity": 1.0,
            }
            for p in BETA_PEOPLE[:5]
        ]
        + [
            {
                "source_id": "SX",
                "person_source_id": "B99",
                "programme": "Money Help",
                "delivered_on": d("2025-02-15"),
            }
        ],
    )
    return db, {"alpha": alpha, "beta": beta}
