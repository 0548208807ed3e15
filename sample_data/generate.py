"""Write the demo's synthetic member files and ``truth.json`` (what the hub should make of them).

Run ``python sample_data/generate.py [--out DIR]``. Everything comes from one seeded
``random.Random(2026)`` and the standard library (plus openpyxl for the workbook), and the
XLSX timestamps are pinned, so every run writes byte-identical files: the demo, its tests and
the published figures never drift.

All people are invented: random pairs of common names, e-mail addresses at example.org and
example.com, phone numbers in Ofcom's drama ranges (07700 900xxx, 020 7946 0xxx) and
postcodes in a few Manchester districts with made-up inward codes. Three members each send
their data in their own awkward way (a UTF-8 CSV with a BOM, one Excel workbook with a title
block and a totals row, a cp1252 semicolon CSV with month-first dates), because that is what
the hub's connectors must cope with. A few rows are deliberately wrong; ``truth.json`` lists
each one with the file, row and the reason the hub should give, next to the clean facts that
should load. ``tests/oracle.py`` turns those facts into the published figures.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import unicodedata
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from random import Random
from typing import Any

SEED = 2026
HERE = Path(__file__).resolve().parent
YEAR_START = date(2025, 1, 1)
YEAR_END = date(2025, 12, 31)
FIXED_TIME = datetime(2026, 1, 5, 9, 0, 0)  # pinned XLSX created/modified time (reproducible)

# District (postcode outward code) -> weight. M16 is small on purpose, so some published
# cells stay below the disclosure threshold.
DISTRICTS = (("M14", 30), ("M15", 24), ("M16", 6), ("M20", 21), ("M21", 19))
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # letters used in real inward codes

# Accented names are written in every member's file exactly alike (the hub does not fold
# accents), and all of them exist in cp1252 so Eastgate's export can hold them.
ACCENTED_GIVEN = ("Zoë", "Siân", "José", "Chloé")
GIVEN_NAMES = (
    *ACCENTED_GIVEN,
    "Renée",
    "Tomás",
    "Olivia",
    "Amelia",
    "Isla",
    "Ava",
    "Mia",
    "Grace",
    "Sophia",
    "Lily",
    "Freya",
    "Emily",
    "Ella",
    "Poppy",
    "Evie",
    "Aisha",
    "Fatima",
    "Maryam",
    "Mary Ann",
    "Anne Marie",
    "Noah",
    "Oliver",
    "George",
    "Leo",
    "Arthur",
    "Muhammad",
    "Harry",
    "Oscar",
    "Jack",
    "Charlie",
    "Jacob",
    "Thomas",
    "Alfie",
    "Joshua",
    "James",
    "Daniel",
    "Samuel",
    "Adam",
    "Ryan",
    "Kai",
    "Omar",
    "Yusuf",
    "Dafydd",
    "Rhys",
    "Liam",
    "Ethan",
    "Priya",
    "Hannah",
    "Ruth",
    "Joan",
    "Peter",
    "David",
    "Susan",
    "Margaret",
    "Ian",
    "Karen",
    "Bronwen",
    "Kwame",
    "Ama",
    "Tariq",
    "Wiktoria",
    "Piotr",
)
FAMILY_NAMES = (
    "Smith",
    "Jones",
    "Williams",
    "Taylor",
    "Brown",
    "Davies",
    "Evans",
    "Wilson",
    "Thomas",
    "Johnson",
    "Roberts",
    "Robinson",
    "Thompson",
    "Wright",
    "Walker",
    "White",
    "Edwards",
    "Hughes",
    "Green",
    "Hall",
    "Lewis",
    "Harris",
    "Clarke",
    "Patel",
    "Jackson",
    "Wood",
    "Turner",
    "Martin",
    "Cooper",
    "Hill",
    "Ward",
    "Morris",
    "Moore",
    "Clark",
    "Lee",
    "King",
    "Baker",
    "Harrison",
    "Morgan",
    "Allen",
    "Scott",
    "Phillips",
    "Watson",
    "Parker",
    "Price",
    "Bennett",
    "Young",
    "Griffiths",
    "Mitchell",
    "Kelly",
    "Cook",
    "Carter",
    "Bailey",
    "Collins",
    "Bell",
    "Shaw",
    "Murphy",
    "Khan",
    "Ahmed",
    "Hussain",
    "Begum",
    "Nowak",
    "Kowalski",
    "Okafor",
    "Mensah",
    "O'Brien",
    "Núñez",
    "Smith-Jones",
    "De Souza",
    "Van Dijk",
    "Müller",
    "Ní Bhriain",
)
ORG_IDS = ("northside_housing", "riverside_food", "eastgate_skills")


# --------------------------------------------------------------------------------------
# Member specifications: programmes, local labels and how each member writes things.
# The member YAML files in members/ map exactly these labels (a test checks it).
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberSpec:
    """One member's vocabulary: its programmes, outcome labels and status labels."""

    org_id: str
    name: str
    # programme -> (outcome area, weight, [(outcome label, code)], (min, max) deliveries)
    programmes: dict[str, tuple[str, int, list[tuple[str, str]], tuple[int, int]]]
    experience: list[tuple[str, str]]
    engagement_status: dict[str, str]  # canonical status -> label written in the file
    outcome_status: dict[str, str]  # canonical status -> label written in the file
    consent: tuple[str, str]  # (yes label, no label)
    outcomes_have_programme: bool = True

    def outcome_labels(self) -> dict[str, str]:
        """Every outcome label this member writes -> outcome code (for its YAML)."""
        labels = {lab: code for spec in self.programmes.values() for lab, code in spec[2]}
        labels.update(dict(self.experience))
        return labels


SPECS: dict[str, MemberSpec] = {
    "northside_housing": MemberSpec(
        org_id="northside_housing",
        name="Northside Housing Trust",
        programmes={
            "Tenancy Sustainment": (
                "housing",
                55,
                [
                    ("Tenancy sustained 6 months", "tenancy_sustained"),
                    ("Homelessness prevented", "homelessness_prevented"),
                    ("Moved to settled home", "settled_accommodation"),
                ],
                (1, 5),
            ),
            "Money Advice": (
                "financial_inclusion",
                45,
                [
                    ("Debt reduced", "debt_reduced"),
                    ("Income maximised", "income_increased"),
                    ("Bank account opened", "bank_account_opened"),
                ],
                (1, 4),
            ),
        },
        experience=[
            ("Felt listened to", "felt_listened_to"),
            ("Satisfied with support", "satisfied_with_help"),
        ],
        engagement_status={
            "active": "Open",
            "completed": "Closed - completed",
            "withdrawn": "Withdrawn",
            "applied": "Referred",
        },
        outcome_status={
            "achieved": "Achieved",
            "progressing": "In progress",
            "not_achieved": "Not achieved",
        },
        consent=("Yes", "No"),
    ),
    "riverside_food": MemberSpec(
        org_id="riverside_food",
        name="Riverside Food Network",
        programmes={
            "Emergency Food": (
                "food_security",
                70,
                [
                    ("Crisis resolved", "food_crisis_resolved"),
                    ("Regular food access", "regular_food_access"),
                ],
                (1, 8),
            ),
            "Community Kitchen": (
                "social_connection",
                30,
                [
                    ("Less isolated", "isolation_reduced"),
                    ("Joined a group", "joined_community_group"),
                ],
                (2, 9),
            ),
        },
        experience=[
            ("Would recommend us", "would_recommend"),
            ("Felt listened to", "felt_listened_to"),
        ],
        engagement_status={
            "active": "Active",
            "completed": "Closed",
            "withdrawn": "Stopped",
            "applied": "Referred",
        },
        outcome_status={"achieved": "Yes", "progressing": "Partly", "not_achieved": "No"},
        consent=("Y", "N"),
        outcomes_have_programme=False,
    ),
    "eastgate_skills": MemberSpec(
        org_id="eastgate_skills",
        name="Eastgate Skills & Wellbeing",
        programmes={
            "Digital Skills": (
                "education_skills",
                40,
                [
                    ("Course completed", "course_completed"),
                    ("Qualification gained", "qualification_gained"),
                    ("Digital skills improved", "basic_skills_improved"),
                ],
                (2, 8),
            ),
            "Job Club": (
                "employment",
                35,
                [
                    ("Started job", "job_started"),
                    ("Job sustained 6m", "job_sustained"),
                    ("Started volunteering", "volunteering_started"),
                ],
                (1, 6),
            ),
            "Wellbeing Cafe": (
                "health_wellbeing",
                25,
                [
                    ("WEMWBS improved", "wellbeing_improved"),
                    ("Registered with GP", "registered_with_gp"),
                ],
                (1, 6),
            ),
        },
        experience=[
            ("Satisfied with help", "satisfied_with_help"),
            ("Felt listened to", "felt_listened_to"),
            ("Would recommend", "would_recommend"),
        ],
        engagement_status={
            "active": "Enrolled",
            "completed": "Finished",
            "withdrawn": "Dropped out",
            "applied": "Waiting list",
        },
        outcome_status={
            "achieved": "Achieved",
            "progressing": "Partial",
            "not_achieved": "Not achieved",
        },
        consent=("Yes", "No"),
    ),
}

# The fourth member keeps its records in Salesforce (NPSP + Program Management Module). Its
# org is served by the loopback sandbox from sample_data/southbank_advice/salesforce_org.json;
# its labels are PMM's own picklist values.
SALESFORCE_ORG = "southbank_advice"
SALESFORCE_SPEC = MemberSpec(
    org_id=SALESFORCE_ORG,
    name="Southbank Advice Centre",
    programmes={
        "Benefits Advice": (
            "financial_inclusion",
            60,
            [("Income maximised", "income_increased"), ("Debt reduced", "debt_reduced")],
            (1, 4),
        ),
        "Back to Work": (
            "employment",
            40,
            [("Started job", "job_started"), ("Started volunteering", "volunteering_started")],
            (1, 5),
        ),
    },
    experience=[("Felt listened to", "felt_listened_to"), ("Would recommend", "would_recommend")],
    engagement_status={
        "active": "Active",
        "completed": "Completed",
        "withdrawn": "Withdrawn",
        "applied": "Applied",
    },
    outcome_status={
        "achieved": "Achieved",
        "progressing": "In progress",
        "not_achieved": "Not achieved",
    },
    consent=("true", "false"),
)

# The fifth member keeps its records in CiviCRM. Its site is served by the loopback sandbox
# from sample_data/harbour_wellbeing/civicrm_site.json. Programmes are CiviCRM case types
# (by machine name); outcomes are the options of an "Outcomes" custom field group on
# activities, read by option name.
CIVICRM_ORG = "harbour_wellbeing"
CIVICRM_SPEC = MemberSpec(
    org_id=CIVICRM_ORG,
    name="Harbour Wellbeing Collective",
    programmes={
        "wellbeing_support": (
            "health_wellbeing",
            55,
            [
                ("Wellbeing improved", "wellbeing_improved"),
                ("Registered with GP", "registered_with_gp"),
            ],
            (1, 5),
        ),
        "money_matters": (
            "financial_inclusion",
            45,
            [("Debt reduced", "debt_reduced"), ("Income maximised", "income_increased")],
            (1, 4),
        ),
    },
    experience=[("Felt listened to", "felt_listened_to"), ("Would recommend", "would_recommend")],
    engagement_status={
        "active": "Open",
        "completed": "Closed",
        "withdrawn": "Withdrawn",
        "applied": "Pending",
    },
    outcome_status={
        "achieved": "Achieved",
        "progressing": "Partly achieved",
        "not_achieved": "Not achieved",
    },
    consent=("true", "false"),
)

# --------------------------------------------------------------------------------------
# People
# --------------------------------------------------------------------------------------


@dataclass
class Identity:
    """A real (synthetic) person, before any member writes them down."""

    given: str
    family: str
    birth_date: date | None
    postcode: str | None
    phone: str  # national digits, e.g. 07700900123
    email: str


@dataclass
class Record:
    """One member's record of an identity, as the member wrote it."""

    org_id: str
    identity: Identity
    given: str
    family: str
    consent: bool
    source_id: str = ""
    phone: str | None = None
    email: str | None = None
    issue: Issue | None = None  # set for rows the hub must reject or warn about
    loads: bool = True  # False: the hub rejects the whole row


@dataclass(frozen=True)
class Issue:
    """Why a row is not taken as it came: the reason keyword and what was wrong."""

    field: str | None  # canonical field at fault (the file's header is looked up from it)
    raw_value: str | None
    severity: str  # error (row rejected) | warning (value dropped) | skipped (not data)
    reason: str


@dataclass
class Engagement:
    """A person's enrolment in a programme (status canonical; ``label`` if written oddly)."""

    person: Record
    programme: str
    status: str
    start: date
    end: date | None
    label: str | None = None  # overrides the member's label (messy rows)
    source_id: str = ""
    issue: Issue | None = None


@dataclass
class Delivery:
    """One session or visit."""

    person: Record
    programme: str
    on: date
    quantity: int
    raw_date: str | None = None  # overrides the written date (messy rows)
    source_id: str = ""
    issue: Issue | None = None


@dataclass
class Outcome:
    """One measured outcome (``code`` None: a label the member has not mapped)."""

    person: Record
    programme: str
    label: str
    code: str | None
    status: str
    on: date
    source_id: str = ""
    issue: Issue | None = None


@dataclass
class MemberData:
    """Everything one member sends: people and activity, with the rows that are wrong."""

    spec: MemberSpec
    records: list[Record] = field(default_factory=list)
    engagements: list[Engagement] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    quarantine: list[dict[str, Any]] = field(default_factory=list)


def _ascii(text: str) -> str:
    """Accent-free lower-case letters, for e-mail local parts."""
    folded = unicodedata.normalize("NFKD", text)
    return "".join(c for c in folded if c.isascii() and c.isalpha()).lower()


def _weighted(rng: Random, options: Iterable[tuple[Any, int]]) -> Any:
    items = list(options)
    return rng.choices([o for o, _ in items], weights=[w for _, w in items], k=1)[0]


def _rand_date(rng: Random, first: date, last: date) -> date:
    if last <= first:
        return first
    return first + timedelta(days=rng.randint(0, (last - first).days))


def _postcode(rng: Random, district: str | None = None) -> str:
    district = district or _weighted(rng, DISTRICTS)
    return f"{district} {rng.randint(1, 9)}{rng.choice(INWARD_LETTERS)}{rng.choice(INWARD_LETTERS)}"


def _phone(rng: Random) -> str:
    if rng.random() < 0.65:
        return f"07700900{rng.randint(0, 999):03d}"
    return f"0207946{rng.randint(0, 999):04d}"


def _email(rng: Random, given: str, family: str) -> str:
    g, f = _ascii(given), _ascii(family)
    local = rng.choice((f"{g}.{f}", f"{g}{f}{rng.randint(1, 99)}", f"{g[0]}.{f}", f"{f}.{g}"))
    return f"{local}@{rng.choice(('example.org', 'example.com'))}"


class People:
    """Makes identities whose linkage key (name, name, birth date) is unique, unless twins."""

    def __init__(self, rng: Random) -> None:
        self.rng = rng
        self.keys: set[tuple[str, str, date | None]] = set()

    @staticmethod
    def key(given: str, family: str, born: date | None) -> tuple[str, str, date | None]:
        """The hub's linkage key: names lower-cased with whitespace collapsed, birth date."""
        return (" ".join(given.split()).lower(), " ".join(family.split()).lower(), born)

    def make(
        self,
        given: str | None = None,
        family: str | None = None,
        born: date | None = None,
        postcode: str | None = None,
        no_birth_date: bool = False,
        no_postcode: bool = False,
    ) -> Identity:
        rng = self.rng
        while True:
            g = given or rng.choice(GIVEN_NAMES)
            f = family or rng.choice(FAMILY_NAMES)
            b = (
                None
                if no_birth_date
                else born or _rand_date(rng, date(1946, 1, 1), date(2006, 12, 31))
            )
            if self.key(g, f, b) not in self.keys:
                break
            given = None  # twins: only the given name may change
        self.keys.add(self.key(g, f, b))
        pc = None if no_postcode else postcode or _postcode(rng)
        return Identity(g, f, b, pc, _phone(rng), _email(rng, g, f))


def _vary(rng: Random, given: str, family: str) -> tuple[str, str]:
    """The same name another member wrote: only letter case and whitespace differ."""
    choice = rng.randrange(7)
    if choice == 0:
        return given.upper(), family.upper()
    if choice == 1:
        return given.lower(), family
    if choice == 2:
        return given, family.upper()
    if choice == 3:
        return f" {given} ", family
    if choice == 4:
        return given.replace(" ", "  ") if " " in given else f"{given}  ", family
    if choice == 5:
        return given, f"{family.replace(' ', '   ')} " if " " in family else f"  {family}"
    return given, family


# --------------------------------------------------------------------------------------
# Who is where
# --------------------------------------------------------------------------------------


def build_people(rng: Random) -> dict[str, list[Record]]:
    """Assign identities to members: shared people, twins, no-consent people, singles."""
    people = People(rng)
    by_org: dict[str, list[Record]] = {org: [] for org in ORG_IDS}

    def add(org: str, ident: Identity, consent: bool | None = None, vary: bool = False) -> Record:
        given, family = (ident.given, ident.family)
        if vary and rng.random() < 0.8:
            given, family = _vary(rng, given, family)
        if consent is None:
            consent = rng.random() >= 0.08
        rec = Record(org, ident, given, family, consent)
        by_org[org].append(rec)
        return rec

    # 20 people at all three members (the first four with accented names).
    for i in range(20):
        ident = people.make(given=ACCENTED_GIVEN[i] if i < 4 else None)
        no_at = ORG_IDS[i % 3] if i in (5, 11) else None  # two refuse consent at one member
        for j, org in enumerate(ORG_IDS):
            add(org, ident, consent=org != no_at, vary=j > 0)
    # 60 people at exactly two members, 20 for each pair; a few refuse consent at one.
    pairs = ((ORG_IDS[0], ORG_IDS[1]), (ORG_IDS[0], ORG_IDS[2]), (ORG_IDS[1], ORG_IDS[2]))
    for p, (first, second) in enumerate(pairs):
        for i in range(20):
            ident = people.make(given=rng.choice(("Renée", "Tomás", "Siân")) if i == 0 else None)
            # i == 3 (and one more pair): no consent at either; i == 9: no consent at one.
            both = i == 3 or (p == 2 and i == 15)
            add(first, ident, consent=not both)
            add(second, ident, consent=not (both or i == 9), vary=True)
    # Twins: same family name, birth date and postcode, different given names.
    for org_a, org_b in (
        (ORG_IDS[0], ORG_IDS[0]),
        (ORG_IDS[0], ORG_IDS[0]),
        (ORG_IDS[2], ORG_IDS[2]),
        (ORG_IDS[1], ORG_IDS[2]),
    ):
        first = people.make()
        second = people.make(family=first.family, born=first.birth_date, postcode=first.postcode)
        add(org_a, first, consent=True)
        add(org_b, second, consent=True)
    # Singles until each member has 250 people; one per member has no postcode and one
    # Riverside client has no birth date (both still load; they just cannot be placed/linked).
    for org in ORG_IDS:
        add(org, people.make(no_postcode=True))
        if org == "riverside_food":
            add(org, people.make(no_birth_date=True))
        while len(by_org[org]) < 250:
            add(org, people.make())
    for org in ORG_IDS:
        for rec in by_org[org]:
            rec.phone = rec.identity.phone if rng.random() < 0.85 else None
            rec.email = rec.identity.email if rng.random() < 0.75 else None
    return by_org


def assign_ids(rng: Random, org: str, records: list[Record]) -> None:
    """Each member numbers its people its own way; files list people in id order."""
    rng.shuffle(records)
    if org == "northside_housing":
        ids = [f"NHT-{n:05d}" for n in sorted(rng.sample(range(100, 9000), len(records)))]
    elif org == "riverside_food":
        ids = [f"{n:06d}" for n in sorted(rng.sample(range(101, 2000), len(records)))]
    else:
        ids = [f"EG{n}" for n in sorted(rng.sample(range(1001, 4000), len(records)))]
    for rec, source_id in zip(records, ids, strict=True):
        rec.source_id = source_id


# --------------------------------------------------------------------------------------
# Activity
# --------------------------------------------------------------------------------------


def plan_activity(rng: Random, data: MemberData, rec: Record) -> None:
    """Engagements, deliveries and outcomes for one person at one member, all in 2025."""
    spec = data.spec
    names = list(spec.programmes)
    weights = [spec.programmes[p][1] for p in names]
    chosen = [rng.choices(names, weights=weights, k=1)[0]]
    if rng.random() < 0.2:
        other = [p for p in names if p != chosen[0]]
        chosen.append(rng.choice(other))
    if rng.random() < 0.03:
        return  # registered, nothing recorded yet
    for prog in chosen:
        _area, _, codes, (lo, hi) = spec.programmes[prog]
        status = _weighted(
            rng, (("applied", 7), ("active", 38), ("completed", 42), ("withdrawn", 13))
        )
        start = _rand_date(rng, date(2025, 1, 2), date(2025, 11, 20))
        end = None
        if status in ("completed", "withdrawn"):
            span = rng.randint(30, 210) if status == "completed" else rng.randint(10, 90)
            end = min(start + timedelta(days=span), YEAR_END)
        data.engagements.append(Engagement(rec, prog, status, start, end))
        if status == "applied":
            continue
        last = end or YEAR_END
        for _ in range(rng.randint(lo, hi)):
            data.deliveries.append(
                Delivery(
                    rec,
                    prog,
                    _rand_date(rng, start, last),
                    rng.randint(1, 6) * 15
                    if spec.org_id == "northside_housing"
                    else rng.randint(1, 4),
                )
            )
        for label, code in rng.sample(codes, k=1 if rng.random() < 0.6 else 2):
            if status == "withdrawn":
                result = _weighted(rng, (("not_achieved", 6), ("progressing", 4)))
            else:
                result = _weighted(
                    rng, (("achieved", 60), ("progressing", 28), ("not_achieved", 12))
                )
            on = _rand_date(rng, min(start + timedelta(days=21), last), last)
            if result == "achieved" and (on - start).days > 90 and rng.random() < 0.4:
                earlier = _rand_date(rng, start, on - timedelta(days=45))
                data.outcomes.append(Outcome(rec, prog, label, code, "progressing", earlier))
            data.outcomes.append(Outcome(rec, prog, label, code, result, on))
        if rng.random() < 0.6:
            label, code = rng.choice(spec.experience)
            on = end or _rand_date(rng, start, YEAR_END)
            result = "achieved" if rng.random() < 0.85 else "not_achieved"
            data.outcomes.append(Outcome(rec, prog, label, code, result, on))


def _sort_and_number(data: MemberData) -> None:
    """Activity files list rows in date order; ids follow that order."""
    prefix = {
        "northside_housing": ("ENG-", "S-", "OUT-"),
        "riverside_food": ("R", "V", "O"),
        "eastgate_skills": ("ENR-", "SES-", "OC-"),
    }[data.spec.org_id]
    data.engagements.sort(key=lambda e: (e.start, e.person.source_id, e.programme))
    data.deliveries.sort(key=lambda d: (d.on, d.person.source_id, d.programme))
    data.outcomes.sort(key=lambda o: (o.on, o.person.source_id, o.label))
    for i, e in enumerate(data.engagements, start=1):
        e.source_id = f"{prefix[0]}{i:04d}"
    for i, d in enumerate(data.deliveries, start=1):
        d.source_id = f"{prefix[1]}{i:05d}"
    for i, o in enumerate(data.outcomes, start=1):
        o.source_id = f"{prefix[2]}{i:04d}"


def _insert_at(rng: Random, rows: list[Any], item: Any) -> None:
    """Put a messy row somewhere in the middle of a file, not at an edge."""
    rows.insert(rng.randint(len(rows) // 4, 3 * len(rows) // 4), item)


def add_messy_rows(rng: Random, people: People, data: MemberData) -> None:
    """The few deliberately wrong rows for each member (each listed in truth.json)."""
    org = data.spec.org_id
    valid = [r for r in data.records if r.loads]
    if org == "northside_housing":
        # A person row with no id: the hub cannot key it, so it is rejected.
        rec = Record(org, people.make(), "", "", True)
        rec.given, rec.family = rec.identity.given, rec.identity.family
        rec.phone, rec.email = rec.identity.phone, rec.identity.email
        rec.issue = Issue("source_id", None, "error", "missing_id")
        rec.loads = False
        data.records.insert(len(data.records) // 2, rec)
        # A phone number that cannot be a number: dropped, the row still loads.
        victim = valid[37]
        victim.phone = "07700 9001234 5"
        victim.issue = Issue("phone", victim.phone, "warning", "invalid_phone")
        # An engagement status the member has not mapped.
        who = valid[61]
        e = Engagement(
            who, "Tenancy Sustainment", "active", date(2025, 6, 2), None, label="On hold"
        )
        e.issue = Issue("status", "On hold", "error", "unmapped_status")
        e.source_id = f"ENG-{len(data.engagements) + 1:04d}"
        _insert_at(rng, data.engagements, e)
        # A session on a day that does not exist.
        who = valid[88]
        d = Delivery(who, "Money Advice", date(2025, 2, 28), 30, raw_date="31/02/2025")
        d.issue = Issue("delivered_on", "31/02/2025", "error", "invalid_date")
        d.source_id = f"S-{len(data.deliveries) + 1:05d}"
        _insert_at(rng, data.deliveries, d)
    elif org == "riverside_food":
        # A second client row reusing an existing id: the first row with the id is kept.
        first = valid[120]
        rec = Record(org, people.make(), "", "", True)
        rec.given, rec.family = rec.identity.given, rec.identity.family
        rec.phone, rec.email = rec.identity.phone, rec.identity.email
        rec.source_id = first.source_id
        rec.issue = Issue("source_id", first.source_id, "error", "duplicate_id")
        rec.loads = False
        data.records.append(rec)
        # An e-mail address without an @: dropped, the row still loads.
        victim = valid[45]
        victim.email = (
            f"{_ascii(victim.identity.given)}.{_ascii(victim.identity.family)} at example.org"
        )
        victim.issue = Issue("email", victim.email, "warning", "invalid_email")
        # A visit for a client id that is not in the Clients sheet.
        used = {r.source_id for r in data.records}
        ghost_id = next(f"{n:06d}" for n in range(999, 10**6) if f"{n:06d}" not in used)
        ghost = Record(org, valid[0].identity, "", "", True, source_id=ghost_id, loads=False)
        d = Delivery(ghost, "Emergency Food", date(2025, 7, 14), 3)
        d.issue = Issue("person_source_id", ghost_id, "error", "orphan")
        d.source_id = f"V{len(data.deliveries) + 1:05d}"
        _insert_at(rng, data.deliveries, d)
    else:
        # A birth date that does not exist (month first: 02/30): the person is rejected and
        # so are the rows that point at them (orphans).
        rec = Record(org, people.make(), "", "", True)
        rec.given, rec.family = rec.identity.given, rec.identity.family
        rec.phone, rec.email = rec.identity.phone, rec.identity.email
        rec.issue = Issue("birth_date", "02/30/1988", "error", "invalid_date")
        rec.loads = False
        rec.source_id = "EG4321"  # ids otherwise run EG1001..EG3999
        data.records.append(rec)
        for e in (Engagement(rec, "Job Club", "active", date(2025, 3, 3), None),):
            e.issue = Issue("person_source_id", rec.source_id, "error", "orphan")
            e.source_id = f"ENR-{len(data.engagements) + 1:04d}"
            _insert_at(rng, data.engagements, e)
        d = Delivery(rec, "Job Club", date(2025, 3, 10), 2)
        d.issue = Issue("person_source_id", rec.source_id, "error", "orphan")
        d.source_id = f"SES-{len(data.deliveries) + 1:05d}"
        _insert_at(rng, data.deliveries, d)
        # An e-mail address with no domain ending: dropped, the row still loads.
        victim = valid[52]
        victim.email = f"{_ascii(victim.identity.given)}@example"
        victim.issue = Issue("email", victim.email, "warning", "invalid_email")
        # An outcome label the member has not mapped.
        who = next(
            e.person
            for e in data.engagements[40:]
            if e.status == "active" and e.issue is None and e.person.loads
        )
        o = Outcome(who, "Wellbeing Cafe", "Confidence up", None, "achieved", date(2025, 9, 18))
        o.issue = Issue("outcome", "Confidence up", "error", "unmapped_outcome")
        o.source_id = f"OC-{len(data.outcomes) + 1:04d}"
        _insert_at(rng, data.outcomes, o)


# --------------------------------------------------------------------------------------
# Writing the files
# --------------------------------------------------------------------------------------


def _dmy(d: date) -> str:
    return f"{d.day:02d}/{d.month:02d}/{d.year}"


def _mdy(d: date) -> str:
    return f"{d.month:02d}/{d.day:02d}/{d.year}"


def _phone_written(org: str, digits: str | None, rng: Random) -> str:
    """Each member's own habit for writing the same number."""
    if digits is None:
        return ""
    if not digits.isdigit():
        return digits  # a messy value, written as it came
    mobile = digits.startswith("07")
    spaced = f"{digits[:5]} {digits[5:]}" if mobile else f"{digits[:3]} {digits[3:7]} {digits[7:]}"
    if org == "northside_housing":
        return spaced
    if org == "riverside_food":
        return digits  # a text cell, leading 0 kept
    if rng.random() < 0.5:
        return "+44 " + spaced[1:]
    return spaced if mobile else f"({digits[:3]}) {digits[3:7]} {digits[7:]}"


def _e164(digits: str | None) -> str | None:
    return f"+44{digits[1:]}" if digits and digits.isdigit() else None


class Quarantine:
    """Collects truth.json's list of rows the hub must not take as they came."""

    def __init__(self, data: MemberData, file: str, sheet: str | None = None) -> None:
        self.data, self.file, self.sheet = data, file, sheet

    def add(self, entity: str, row: int, source_id: str | None, issue: Issue | None) -> None:
        if issue is None:
            return
        self.data.quarantine.append(
            {
                "org_id": self.data.spec.org_id,
                "entity": entity,
                "file": self.file,
                "sheet": self.sheet,
                "row": row,
                "source_id": source_id or None,
                "column": column_of(self.data.spec.org_id, entity, issue.field),
                "field": issue.field,
                "raw_value": issue.raw_value,
                "severity": issue.severity,
                "reason": issue.reason,
            }
        )


def _write_csv(path: Path, columns: list[str], rows: list[list[str]], style: CsvStyle) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=style.delimiter, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue().encode(style.encoding))


# Each member's files: entity -> [(canonical field or None, header as written in the file)],
# in column order. The member YAMLs map exactly these headers (a test checks it).
HEADERS: dict[str, dict[str, list[tuple[str | None, str]]]] = {
    "northside_housing": {
        "person": [
            ("source_id", "Client Ref"),
            ("given_name", "First Name"),
            ("family_name", "Surname"),
            ("birth_date", "Date of Birth"),
            ("postcode", "Postcode"),
            ("phone", "Phone"),
            ("email", "Email"),
            ("consent_to_share", "Consent to share"),
        ],
        "engagement": [
            ("source_id", "Engagement ID"),
            ("person_source_id", "Client Ref"),
            ("programme", "Programme"),
            ("status", "Status"),
            ("start_date", "Start Date"),
            ("end_date", "End Date"),
        ],
        "service_delivery": [
            ("source_id", "Session ID"),
            ("person_source_id", "Client Ref"),
            ("programme", "Programme"),
            ("service_name", "Session Type"),
            ("delivered_on", "Session Date"),
            ("quantity", "Duration (mins)"),
        ],
        "outcome": [
            ("source_id", "Outcome ID"),
            ("person_source_id", "Client Ref"),
            ("programme", "Programme"),
            ("outcome", "Outcome"),
            ("status", "Outcome Status"),
            ("measured_on", "Date Recorded"),
        ],
    },
    "riverside_food": {
        "person": [
            ("source_id", "Client ID"),
            ("given_name", "First Name"),
            ("family_name", "Last Name"),
            ("birth_date", "Date of Birth"),
            ("postcode", "Postcode"),
            ("phone", "Phone"),
            ("email", "Email"),
            ("consent_to_share", "Consent (Y/N)"),
            (None, "Household size"),
        ],
        "engagement": [
            ("source_id", "Referral ID"),
            ("person_source_id", "Client ID"),
            ("programme", "Programme"),
            ("status", "Status"),
            ("start_date", "Referred on"),
            ("end_date", "Closed on"),
        ],
        "service_delivery": [
            ("source_id", "Visit No"),
            ("person_source_id", "Client ID"),
            ("programme", "Service"),
            ("delivered_on", "Visit date"),
            ("quantity", "Items"),
        ],
        "outcome": [
            ("source_id", "Ref"),
            ("person_source_id", "Client ID"),
            ("outcome", "Outcome"),
            ("status", "Result"),
            ("measured_on", "Date recorded"),
        ],
    },
    "eastgate_skills": {
        "person": [
            ("source_id", "  client ID "),
            ("given_name", "First name"),
            ("family_name", "SURNAME"),
            ("birth_date", "DATE OF BIRTH"),
            ("postcode", "post code"),
            ("phone", "Tel"),
            ("email", "e-mail"),
            ("consent_to_share", "Consent?"),
        ],
        "engagement": [
            ("source_id", "Enrolment Ref"),
            ("person_source_id", "client id"),
            ("programme", "PROGRAMME"),
            ("status", "status"),
            ("start_date", "Start date"),
            ("end_date", "END DATE"),
        ],
        "service_delivery": [
            ("source_id", "Session Ref"),
            ("person_source_id", " Client ID"),
            ("programme", "Programme"),
            ("service_name", "Activity"),
            ("delivered_on", "Date"),
            ("quantity", "Hours"),
        ],
        "outcome": [
            ("source_id", "Outcome Ref"),
            ("person_source_id", "client  id"),
            ("programme", "Programme"),
            ("outcome", "Outcome"),
            ("status", "Result"),
            ("measured_on", "Date"),
        ],
    },
}
RIVERSIDE_WORKBOOK = "riverside_food/riverside_food_network.xlsx"
SHEETS = {
    "person": "Clients",
    "engagement": "Referrals",
    "service_delivery": "Visits",
    "outcome": "Outcomes",
}


def header(org: str, entity: str) -> list[str]:
    """The header row of one member's file for one entity."""
    return [label for _, label in HEADERS[org][entity]]


def column_of(org: str, entity: str, field_name: str | None) -> str | None:
    """The header a canonical field is written under (no field: the first column)."""
    if field_name is None:
        return HEADERS[org][entity][0][1]  # a whole-row problem: name the row's first column
    return next((label for f, label in HEADERS[org][entity] if f == field_name), None)


@dataclass(frozen=True)
class CsvStyle:
    """How one CSV member writes its files."""

    encoding: str
    delimiter: str
    date: Callable[[date], str]


CSV_STYLES = {
    "northside_housing": CsvStyle(encoding="utf-8-sig", delimiter=",", date=_dmy),
    "eastgate_skills": CsvStyle(encoding="cp1252", delimiter=";", date=_mdy),
}
SESSION_TYPES = {
    "Tenancy Sustainment": ("Home visit", "Phone support", "Office appointment"),
    "Money Advice": ("Benefits check", "Debt appointment", "Budgeting session"),
    "Digital Skills": ("Classroom", "Drop-in"),
    "Job Club": ("CV workshop", "Interview practice", "Job search"),
    "Wellbeing Cafe": ("Cafe session", "Walk and talk"),
}


def _programme_written(org: str, programme: str, rng: Random) -> str:
    """Eastgate's staff type programme names in whatever case (labels match regardless)."""
    if org == "eastgate_skills":
        return rng.choice((programme, programme, programme.upper(), programme.lower()))
    return programme


def write_csv_member(rng: Random, data: MemberData, folder: Path) -> dict[str, str]:
    """Write one CSV member's four files; return entity -> file path (relative)."""
    org = data.spec.org_id
    style = CSV_STYLES[org]
    spec = data.spec
    enrolments = "engagements" if org == "northside_housing" else "enrolments"
    files = {
        "person": f"{org}/people.csv",
        "engagement": f"{org}/{enrolments}.csv",
        "service_delivery": f"{org}/sessions.csv",
        "outcome": f"{org}/outcomes.csv",
    }
    q = Quarantine(data, files["person"])
    rows = []
    for n, rec in enumerate(data.records, start=2):
        postcode = rec.identity.postcode or ""
        if org == "eastgate_skills" and postcode and rng.random() < 0.15:
            postcode = postcode.lower()
        born = (
            rec.issue.raw_value
            if rec.issue and rec.issue.reason == "invalid_date"
            else style.date(rec.identity.birth_date)
            if rec.identity.birth_date
            else ""
        )
        rows.append(
            [
                rec.source_id,
                rec.given,
                rec.family,
                born,
                postcode,
                _phone_written(org, rec.phone, rng),
                rec.email or "",
                spec.consent[0] if rec.consent else spec.consent[1],
            ]
        )
        q.add("person", n, rec.source_id, rec.issue)
    _write_csv(folder / files["person"], header(org, "person"), rows, style)

    q = Quarantine(data, files["engagement"])
    rows = []
    for n, e in enumerate(data.engagements, start=2):
        rows.append(
            [
                e.source_id,
                e.person.source_id,
                _programme_written(org, e.programme, rng),
                e.label or spec.engagement_status[e.status],
                style.date(e.start),
                style.date(e.end) if e.end else "",
            ]
        )
        q.add("engagement", n, e.source_id, e.issue)
    _write_csv(folder / files["engagement"], header(org, "engagement"), rows, style)

    q = Quarantine(data, files["service_delivery"])
    rows = []
    for n, d in enumerate(data.deliveries, start=2):
        rows.append(
            [
                d.source_id,
                d.person.source_id,
                _programme_written(org, d.programme, rng),
                rng.choice(SESSION_TYPES[d.programme]),
                d.raw_date or style.date(d.on),
                str(d.quantity),
            ]
        )
        q.add("service_delivery", n, d.source_id, d.issue)
    _write_csv(folder / files["service_delivery"], header(org, "service_delivery"), rows, style)

    q = Quarantine(data, files["outcome"])
    rows = []
    for n, o in enumerate(data.outcomes, start=2):
        status = spec.outcome_status[o.status]
        if org == "eastgate_skills":
            status = status.upper()
        rows.append(
            [
                o.source_id,
                o.person.source_id,
                _programme_written(org, o.programme, rng),
                o.label,
                status,
                style.date(o.on),
            ]
        )
        q.add("outcome", n, o.source_id, o.issue)
    _write_csv(folder / files["outcome"], header(org, "outcome"), rows, style)
    return files


def write_riverside(rng: Random, data: MemberData, folder: Path) -> dict[str, str]:
    """One workbook: a title block above the Clients header, a blank row and a totals row."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    spec = data.spec
    wb = Workbook()
    clients = wb.active
    clients.title = "Clients"
    sheet, columns = SHEETS["person"], header(spec.org_id, "person")
    clients.append(["Riverside Food Network - client register"])
    clients["A1"].font = Font(bold=True, size=14)
    clients.append(["Exported from FoodBank Manager on 05/01/2026"])
    clients.append([])
    clients.append(columns)
    q = Quarantine(data, RIVERSIDE_WORKBOOK, sheet)
    for rec in data.records:
        clients.append(
            [
                rec.source_id,
                rec.given,
                rec.family,
                rec.identity.birth_date,
                rec.identity.postcode or None,
                _phone_written(spec.org_id, rec.phone, rng) or None,
                rec.email or None,
                spec.consent[0] if rec.consent else spec.consent[1],
                rng.randint(1, 6),
            ]
        )
        row = clients.max_row
        q.add("person", row, rec.source_id, rec.issue)
        for col in ("A", "F"):
            clients[f"{col}{row}"].number_format = "@"
        clients[f"D{row}"].number_format = "dd/mm/yyyy"
    clients.append([])
    clients.append(["Total clients", len(data.records)])
    total_row = clients.max_row
    clients[f"A{total_row}"].font = Font(bold=True)
    q.add("person", total_row, None, Issue(None, "Total clients", "skipped", "totals_row"))

    sheet, columns = SHEETS["engagement"], header(spec.org_id, "engagement")
    ws = wb.create_sheet(sheet)
    ws.append(columns)
    q = Quarantine(data, RIVERSIDE_WORKBOOK, sheet)
    for e in data.engagements:
        ws.append(
            [
                e.source_id,
                e.person.source_id,
                e.programme,
                e.label or spec.engagement_status[e.status],
                e.start,
                e.end,
            ]
        )
        row = ws.max_row
        ws[f"B{row}"].number_format = "@"
        ws[f"E{row}"].number_format = ws[f"F{row}"].number_format = "dd/mm/yyyy"
        q.add("engagement", row, e.source_id, e.issue)

    sheet, columns = SHEETS["service_delivery"], header(spec.org_id, "service_delivery")
    ws = wb.create_sheet(sheet)
    ws.append(columns)
    q = Quarantine(data, RIVERSIDE_WORKBOOK, sheet)
    for d in data.deliveries:
        ws.append([d.source_id, d.person.source_id, d.programme, d.on, d.quantity])
        row = ws.max_row
        ws[f"B{row}"].number_format = "@"
        ws[f"D{row}"].number_format = "dd/mm/yyyy"
        q.add("service_delivery", row, d.source_id, d.issue)

    sheet, columns = SHEETS["outcome"], header(spec.org_id, "outcome")
    ws = wb.create_sheet(sheet)
    ws.append(columns)
    q = Quarantine(data, RIVERSIDE_WORKBOOK, sheet)
    for o in data.outcomes:
        # "Date recorded" is typed in as text, unlike the real date cells elsewhere.
        ws.append(
            [o.source_id, o.person.source_id, o.label, spec.outcome_status[o.status], _dmy(o.on)]
        )
        row = ws.max_row
        ws[f"B{row}"].number_format = ws[f"E{row}"].number_format = "@"
        q.add("outcome", row, o.source_id, o.issue)

    wb.properties.creator = "Riverside Food Network"
    wb.properties.lastModifiedBy = "Riverside Food Network"
    wb.properties.created = FIXED_TIME
    wb.properties.modified = FIXED_TIME
    path = folder / RIVERSIDE_WORKBOOK
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_reproducible_xlsx(wb))
    return dict.fromkeys(SHEETS, RIVERSIDE_WORKBOOK)


def _reproducible_xlsx(wb: Any) -> bytes:
    """Save without openpyxl's "modified = now" and with pinned zip entry times."""
    from openpyxl.writer.excel import ExcelWriter

    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
        ExcelWriter(wb, archive).save()
    out = io.BytesIO()
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, src.read(name))
    return out.getvalue()


# --------------------------------------------------------------------------------------
# truth.json
# --------------------------------------------------------------------------------------


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


def member_truth(data: MemberData, files: dict[str, str]) -> dict[str, Any]:
    """The clean facts the hub should load for one member, and its set-aside rows."""
    spec = data.spec
    org = spec.org_id
    loaded = {r.source_id for r in data.records if r.loads}
    people = []
    for r in data.records:
        if not r.loads:
            continue
        dropped = r.issue.reason if r.issue else None
        people.append(
            {
                "org_id": org,
                "source_id": r.source_id,
                "given_name": r.given,
                "family_name": r.family,
                "birth_date": _iso(r.identity.birth_date),
                "postcode": r.identity.postcode,
                "consent": r.consent,
                "email": None if dropped == "invalid_email" else r.email,
                "phone": None if dropped == "invalid_phone" else _e164(r.phone),
            }
        )
    engagements = [
        {
            "source_id": e.source_id,
            "person_source_id": e.person.source_id,
            "programme": e.programme,
            "status": e.status,
            "start_date": _iso(e.start),
            "end_date": _iso(e.end),
        }
        for e in data.engagements
        if e.issue is None and e.person.source_id in loaded
    ]
    deliveries = [
        {
            "source_id": d.source_id,
            "person_source_id": d.person.source_id,
            "programme": d.programme,
            "delivered_on": _iso(d.on),
        }
        for d in data.deliveries
        if d.issue is None and d.person.source_id in loaded
    ]
    outcomes = [
        {
            "source_id": o.source_id,
            "person_source_id": o.person.source_id,
            "programme": o.programme if spec.outcomes_have_programme else None,
            "outcome_code": o.code,
            "status": o.status,
            "measured_on": _iso(o.on),
        }
        for o in data.outcomes
        if o.issue is None and o.person.source_id in loaded
    ]
    by_key = {"person": 0, "engagement": 1, "service_delivery": 2, "outcome": 3}
    quarantine = sorted(
        data.quarantine, key=lambda q: (by_key[q["entity"]], q["row"] or 0, q["source_id"] or "")
    )
    return {
        "name": spec.name,
        "files": files,
        "programmes": {p: s[0] for p, s in spec.programmes.items()},
        "people": people,
        "engagements": engagements,
        "deliveries": deliveries,
        "outcomes": outcomes,
        "quarantine": quarantine,
    }


TRUTH_NOTES = [
    "Facts the hub should hold after validation; tests/oracle.py derives published figures.",
    "Names are as written in the member's file (case and spacing kept); linkage compares "
    "them lower-cased with whitespace collapsed. Postcodes are normalised (upper case).",
    "phone is E.164 (null when absent or dropped); email is null when absent or dropped.",
    "programme is the member's programme label as mapped in its YAML; outcome areas come "
    "from 'programmes' here and from 'taxonomy' (outcome code -> area).",
    "status values are canonical: engagement applied|active|completed|withdrawn, outcome "
    "achieved|progressing|not_achieved.",
    "quarantine rows: row is the 1-based line in a CSV (header = 1) or the Excel row number; "
    "severity error = row rejected, warning = value dropped and row kept, skipped = not a "
    "data row. A duplicate person id keeps the first row and rejects the later one. Rows "
    "pointing at a person who is not loaded are rejected with reason 'orphan'.",
]


def _dump_truth(truth: dict[str, Any]) -> str:
    """JSON with one record per line: readable, diffable, and still plain JSON."""

    def row(obj: Any) -> str:
        return json.dumps(obj, ensure_ascii=False)

    out = ["{"]
    top = list(truth.items())
    for i, (key, value) in enumerate(top):
        comma = "," if i < len(top) - 1 else ""
        if key != "members":
            out.append(
                f" {row(key)}: {json.dumps(value, ensure_ascii=False, indent=1)}{comma}".replace(
                    "\n", "\n "
                )
            )
            continue
        out.append(' "members": {')
        members = list(value.items())
        for j, (org, body) in enumerate(members):
            out.append(f"  {row(org)}: {{")
            parts = list(body.items())
            for k, (name, content) in enumerate(parts):
                c2 = "," if k < len(parts) - 1 else ""
                if isinstance(content, list):
                    lines = [f"    {row(item)}" for item in content]
                    inner = ",\n".join(lines)
                    out.append(
                        f"   {row(name)}: [\n{inner}\n   ]{c2}"
                        if lines
                        else f"   {row(name)}: []{c2}"
                    )
                else:
                    out.append(f"   {row(name)}: {row(content)}{c2}")
            out.append("  }" + ("," if j < len(members) - 1 else ""))
        out.append(" }" + comma)
    out.append("}")
    return "\n".join(out) + "\n"


def _taxonomy_areas() -> dict[str, str]:
    """Outcome code -> area for every code the demo uses (the shared taxonomy's values)."""
    areas: dict[str, str] = {}
    for spec in (*SPECS.values(), SALESFORCE_SPEC, CIVICRM_SPEC):
        for _, (area, _, codes, _) in spec.programmes.items():
            areas.update({code: area for _, code in codes})
        areas.update({code: "experience" for _, code in spec.experience})
    return dict(sorted(areas.items()))


# --------------------------------------------------------------------------------------
# The Salesforce member
# --------------------------------------------------------------------------------------

SALESFORCE_FILE = f"{SALESFORCE_ORG}/salesforce_org.json"
SF_STAMP = "2025-12-31T18:00:00.000+0000"  # every record's CreatedDate/SystemModstamp


def _sf_id(prefix: str, number: int) -> str:
    """An 18-character id shaped like Salesforce's (key prefix, then a serial)."""
    return f"{prefix}SB{number:010d}AAA"


def build_salesforce_member(
    rng: Random, people: People, by_org: dict[str, list[Record]]
) -> MemberData:
    """Southbank's clients: 40 also known to a spreadsheet member, the rest its own."""
    data = MemberData(SALESFORCE_SPEC)
    known = sorted(
        (r for org in ORG_IDS for r in by_org[org] if r.loads and r.identity.birth_date),
        key=lambda r: (r.org_id, r.source_id),
    )
    seen: set[int] = set()
    for rec in rng.sample(known, 60):
        if id(rec.identity) in seen or len(seen) == 40:
            continue
        seen.add(id(rec.identity))
        given, family = _vary(rng, rec.identity.given, rec.identity.family)
        data.records.append(
            Record(SALESFORCE_ORG, rec.identity, given, family, rng.random() >= 0.1)
        )
    data.records.append(Record(SALESFORCE_ORG, people.make(no_postcode=True), "", "", True))
    while len(data.records) < 150:
        data.records.append(Record(SALESFORCE_ORG, people.make(), "", "", rng.random() >= 0.1))
    for rec in data.records:
        rec.given, rec.family = rec.given or rec.identity.given, rec.family or rec.identity.family
        rec.phone = rec.identity.phone if rng.random() < 0.9 else None
        rec.email = rec.identity.email if rng.random() < 0.8 else None
    rng.shuffle(data.records)
    for n, rec in enumerate(data.records, start=1):
        rec.source_id = _sf_id("003", n)
    data.records.sort(key=lambda r: r.source_id)
    for rec in data.records:
        plan_activity(rng, data, rec)
    data.engagements.sort(key=lambda e: (e.start, e.person.source_id, e.programme))
    data.deliveries.sort(key=lambda d: (d.on, d.person.source_id, d.programme))
    data.outcomes.sort(key=lambda o: (o.on, o.person.source_id, o.label))
    # The deliberately awkward records, each listed in truth.json with the field at fault.
    victim = data.records[17]
    victim.phone = "12"
    victim.issue = Issue("Phone", "12", "warning", "invalid_phone")
    who = next(e for e in data.engagements[30:] if e.status == "active")
    e = Engagement(who.person, who.programme, "active", who.start, None, label="On hold")
    e.issue = Issue("pmdm__Stage__c", "On hold", "error", "unmapped_status")
    data.engagements.append(e)
    d = Delivery(who.person, who.programme, who.start + timedelta(days=7), 1)
    d.issue = Issue("pmdm__AttendanceStatus__c", "Absent", "skipped", "absent")
    data.deliveries.append(d)
    o = Outcome(who.person, who.programme, "Confidence up", None, "achieved", date(2025, 9, 9))
    o.issue = Issue("Outcome__c", "Confidence up", "error", "unmapped_outcome")
    data.outcomes.append(o)
    for prefix, rows in (
        ("a0C", data.engagements),
        ("a0D", data.deliveries),
        ("a0F", data.outcomes),
    ):
        for n, row in enumerate(rows, start=1):
            row.source_id = _sf_id(prefix, n)
    return data


def write_salesforce_member(rng: Random, data: MemberData, folder: Path) -> dict[str, str]:
    """The org's records, object by object, as the sandbox serves them."""
    spec = data.spec
    programs = {name: _sf_id("a0A", n) for n, name in enumerate(spec.programmes, start=1)}
    services = {name: _sf_id("a0B", n) for n, name in enumerate(spec.programmes, start=1)}
    org: dict[str, list[dict[str, Any]]] = {
        "Account": [],
        "Contact": [],
        "pmdm__Program__c": [
            {"Id": pid, "Name": name, "pmdm__Status__c": "Active"} for name, pid in programs.items()
        ],
        "pmdm__Service__c": [
            {
                "Id": services[name],
                "Name": f"{name} session",
                "pmdm__Program__c": pid,
                "pmdm__UnitOfMeasurement__c": "Session",
            }
            for name, pid in programs.items()
        ],
        "pmdm__ProgramEngagement__c": [],
        "pmdm__ServiceDelivery__c": [],
        "Outcome__c": [],
    }
    q = data.quarantine
    for n, rec in enumerate(data.records, start=1):
        account = _sf_id("001", n)
        org["Account"].append({"Id": account, "Name": f"{rec.identity.family} Household"})
        phone = rec.phone if rec.issue else _phone_written("northside_housing", rec.phone, rng)
        org["Contact"].append(
            {
                "Id": rec.source_id,
                "FirstName": rec.given,
                "LastName": rec.family,
                "Birthdate": _iso(rec.identity.birth_date),
                "Email": rec.email,
                "Phone": phone or None,
                "MailingPostalCode": rec.identity.postcode,
                "AccountId": account,
                "Consent_To_Share__c": rec.consent,
            }
        )
    for e in data.engagements:
        org["pmdm__ProgramEngagement__c"].append(
            {
                "Id": e.source_id,
                "pmdm__Contact__c": e.person.source_id,
                "pmdm__Program__c": programs[e.programme],
                "pmdm__Stage__c": e.label or spec.engagement_status[e.status],
                "pmdm__StartDate__c": _iso(e.start),
                "pmdm__EndDate__c": _iso(e.end),
            }
        )
    for d in data.deliveries:
        org["pmdm__ServiceDelivery__c"].append(
            {
                "Id": d.source_id,
                "pmdm__Contact__c": d.person.source_id,
                "pmdm__Service__c": services[d.programme],
                "pmdm__DeliveryDate__c": _iso(d.on),
                "pmdm__Quantity__c": float(d.quantity),
                "pmdm__AttendanceStatus__c": d.issue.raw_value if d.issue else "Present",
            }
        )
    for o in data.outcomes:
        org["Outcome__c"].append(
            {
                "Id": o.source_id,
                "Contact__c": o.person.source_id,
                "Program__c": programs[o.programme],
                "Outcome__c": o.label,
                "Status__c": spec.outcome_status[o.status],
                "Measured_On__c": _iso(o.on),
            }
        )
    entities = (
        ("person", data.records, "Contact"),
        ("engagement", data.engagements, "pmdm__ProgramEngagement__c"),
        ("service_delivery", data.deliveries, "pmdm__ServiceDelivery__c"),
        ("outcome", data.outcomes, "Outcome__c"),
    )
    for entity, rows, sobject in entities:
        for row in rows:
            if row.issue is None:
                continue
            q.append(
                {
                    "org_id": spec.org_id,
                    "entity": entity,
                    "file": sobject,
                    "sheet": None,
                    "row": None,
                    "source_id": row.source_id,
                    "column": row.issue.field,
                    "field": row.issue.field,
                    "raw_value": row.issue.raw_value,
                    "severity": row.issue.severity,
                    "reason": row.issue.reason,
                }
            )
    path = folder / SALESFORCE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"created": SF_STAMP, "records": org}
    path.write_text(_dump_org(body), encoding="utf-8", newline="\n")
    return {"org": SALESFORCE_FILE}


def _dump_org(body: dict[str, Any]) -> str:
    """One record per line: readable and diffable."""
    lines = ["{", f' "created": {json.dumps(body["created"])},', ' "records": {']
    objects = list(body["records"].items())
    for i, (sobject, rows) in enumerate(objects):
        inner = ",\n".join(f"   {json.dumps(r, ensure_ascii=False)}" for r in rows)
        comma = "," if i < len(objects) - 1 else ""
        lines.append(f"  {json.dumps(sobject)}: [\n{inner}\n  ]{comma}")
    lines += [" }", "}"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# The CiviCRM member
# --------------------------------------------------------------------------------------

CIVICRM_FILE = f"{CIVICRM_ORG}/civicrm_site.json"
CIVI_CLOCK = "2026-01-05 09:00:00"  # the site's "now" when the demo starts
CIVI_STAMP = "2025-12-31 18:00:00"  # every record's modified_date
CIVI_OPTIONS: dict[str, dict[int, tuple[str, str]]] = {
    "case_type": {
        1: ("wellbeing_support", "Wellbeing support"),
        2: ("money_matters", "Money matters"),
    },
    "case_status": {
        1: ("Open", "Ongoing"),
        2: ("Closed", "Resolved"),
        3: ("Withdrawn", "Withdrawn"),
        4: ("Pending", "Pending"),
        5: ("Urgent", "Urgent"),
    },
    "activity_type": {
        1: ("Meeting", "Meeting"),
        2: ("Phone Call", "Phone Call"),
        3: ("Open Case", "Open Case"),
        4: ("Outcome Review", "Outcome review"),
    },
    "activity_status": {1: ("Scheduled", "Scheduled"), 2: ("Completed", "Completed")},
    "record_type": {
        1: ("Activity Assignees", "Activity Assignees"),
        2: ("Activity Source", "Activity Source"),
        3: ("Activity Targets", "Activity Targets"),
    },
    "contribution_status": {1: ("Completed", "Completed"), 2: ("Pending", "Pending")},
    "outcome": {
        n: (label, label)
        for n, label in enumerate([*CIVICRM_SPEC.outcome_labels(), "Confidence up"], start=1)
    },
    "outcome_status": {
        n: (label, label) for n, label in enumerate(CIVICRM_SPEC.outcome_status.values(), start=1)
    },
}


def _option_id(options: str, name: str) -> int:
    return next(k for k, (n, _) in CIVI_OPTIONS[options].items() if n == name)


def build_civicrm_member(
    rng: Random, people: People, by_org: dict[str, list[Record]], southbank: MemberData
) -> MemberData:
    """Harbour's clients: 30 also known to a spreadsheet member, 10 also at Southbank
    (some of them at three members), the rest its own."""
    data = MemberData(CIVICRM_SPEC)
    known = sorted(
        (r for org in ORG_IDS for r in by_org[org] if r.loads and r.identity.birth_date),
        key=lambda r: (r.org_id, r.source_id),
    )
    at_southbank = sorted(
        (r for r in southbank.records if r.identity.birth_date), key=lambda r: r.source_id
    )
    seen: set[int] = set()
    for pool, wanted in ((known, 30), (at_southbank, 40)):
        for rec in rng.sample(pool, 60):
            if id(rec.identity) in seen or len(seen) == wanted:
                continue
            seen.add(id(rec.identity))
            given, family = _vary(rng, rec.identity.given, rec.identity.family)
            data.records.append(
                Record(CIVICRM_ORG, rec.identity, given, family, rng.random() >= 0.1)
            )
    while len(data.records) < 120:
        data.records.append(Record(CIVICRM_ORG, people.make(), "", "", rng.random() >= 0.1))
    for rec in data.records:
        rec.given, rec.family = rec.given or rec.identity.given, rec.family or rec.identity.family
        rec.phone = rec.identity.phone if rng.random() < 0.85 else None
        rec.email = rec.identity.email if rng.random() < 0.8 else None
    rng.shuffle(data.records)
    for n, rec in enumerate(data.records, start=1):
        rec.source_id = str(n)
    for rec in data.records:
        plan_activity(rng, data, rec)
    data.engagements.sort(key=lambda e: (e.start, int(e.person.source_id), e.programme))
    # The deliberately awkward records, each listed in truth.json with the field at fault.
    victim = data.records[11]
    victim.phone = "12"
    victim.issue = Issue("Phone.phone", "12", "warning", "invalid_phone")
    who = next(e for e in data.engagements[20:] if e.status == "active")
    urgent = Engagement(who.person, who.programme, "active", who.start, None, label="Urgent")
    urgent.issue = Issue("status_id", "Urgent", "error", "unmapped_status")
    data.engagements.append(urgent)
    loose = Delivery(who.person, who.programme, who.start + timedelta(days=3), 2)
    loose.issue = Issue("case_id", None, "error", "not_on_a_case")
    data.deliveries.append(loose)
    odd = Outcome(who.person, who.programme, "Confidence up", None, "achieved", date(2025, 9, 9))
    odd.issue = Issue("Outcomes.outcome", "Confidence up", "error", "unmapped_outcome")
    data.outcomes.append(odd)
    # Cases are numbered in start order; activities (deliveries, then outcome reviews, each
    # in date order) share one id sequence, as in CiviCRM.
    for n, e in enumerate(data.engagements, start=1):
        e.source_id = f"{n}:{e.person.source_id}"
    data.deliveries.sort(key=lambda d: (d.on, int(d.person.source_id), d.programme))
    data.outcomes.sort(key=lambda o: (o.on, int(o.person.source_id), o.label))
    for n, row in enumerate([*data.deliveries, *data.outcomes], start=1):
        row.source_id = f"{n}:{row.person.source_id}"
    return data


def write_civicrm_member(rng: Random, data: MemberData, folder: Path) -> dict[str, str]:
    """The site's records, entity by entity, as the sandbox serves them."""
    spec = data.spec
    tables: dict[str, list[dict[str, Any]]] = {
        name: []
        for name in (
            "Contact",
            "Email",
            "Phone",
            "Address",
            "Case",
            "CaseContact",
            "Activity",
            "ActivityContact",
        )
    }

    def child(entity: str, **record: Any) -> None:
        tables[entity].append({"id": len(tables[entity]) + 1, **record})

    for rec in data.records:
        cid = int(rec.source_id)
        tables["Contact"].append(
            {
                "id": cid,
                "contact_type": "Individual",
                "first_name": rec.given,
                "last_name": rec.family,
                "birth_date": _iso(rec.identity.birth_date),
                "is_deleted": False,
                "created_date": CIVI_STAMP,
                "modified_date": CIVI_STAMP,
                "Consent.share_data": rec.consent,
            }
        )
    tables["Contact"].sort(key=lambda r: r["id"])
    for rec in sorted(data.records, key=lambda r: int(r.source_id)):
        cid = int(rec.source_id)
        if rec.email:
            child("Email", contact_id=cid, is_primary=True, email=rec.email)
        phone = rec.phone if rec.issue else _phone_written("eastgate_skills", rec.phone, rng)
        if phone:
            child("Phone", contact_id=cid, is_primary=True, phone=phone)
        postcode = rec.identity.postcode
        if postcode:
            written = postcode.lower() if rng.random() < 0.3 else postcode
            child("Address", contact_id=cid, is_primary=True, postal_code=written)
    case_of: dict[tuple[str, str], int] = {}
    for e in data.engagements:
        case_id = int(e.source_id.split(":")[0])
        if e.issue is None:
            case_of[(e.person.source_id, e.programme)] = case_id
        tables["Case"].append(
            {
                "id": case_id,
                "case_type_id": _option_id("case_type", e.programme),
                "status_id": _option_id("case_status", e.label or spec.engagement_status[e.status]),
                "start_date": _iso(e.start),
                "end_date": _iso(e.end),
                "is_deleted": False,
                "modified_date": CIVI_STAMP,
            }
        )
        child("CaseContact", case_id=case_id, contact_id=int(e.person.source_id))
    for d in data.deliveries:
        aid = int(d.source_id.split(":")[0])
        tables["Activity"].append(
            {
                "id": aid,
                "activity_type_id": _option_id(
                    "activity_type", rng.choice(("Meeting", "Phone Call"))
                ),
                "activity_date_time": f"{_iso(d.on)} {rng.randint(9, 16):02d}:00:00",
                "status_id": _option_id("activity_status", "Completed"),
                "duration": 15 * d.quantity,
                "case_id": None if d.issue else case_of[(d.person.source_id, d.programme)],
                "is_deleted": False,
                "modified_date": CIVI_STAMP,
            }
        )
    for o in data.outcomes:
        aid = int(o.source_id.split(":")[0])
        tables["Activity"].append(
            {
                "id": aid,
                "activity_type_id": _option_id("activity_type", "Outcome Review"),
                "activity_date_time": f"{_iso(o.on)} 12:00:00",
                "status_id": _option_id("activity_status", "Completed"),
                "duration": 30,
                "case_id": case_of[(o.person.source_id, o.programme)],
                "is_deleted": False,
                "modified_date": CIVI_STAMP,
                "Outcomes.outcome": _option_id("outcome", o.label),
                "Outcomes.status": _option_id("outcome_status", spec.outcome_status[o.status]),
                "Outcomes.value": None,
            }
        )
    tables["Activity"].sort(key=lambda r: r["id"])
    target = {
        int(row.source_id.split(":")[0]): int(row.person.source_id)
        for row in (*data.deliveries, *data.outcomes)
    }
    for a in tables["Activity"]:
        child("ActivityContact", activity_id=a["id"], contact_id=target[a["id"]], record_type_id=3)
    entities = (
        ("person", data.records, "Contact"),
        ("engagement", data.engagements, "Case"),
        ("service_delivery", data.deliveries, "Activity"),
        ("outcome", data.outcomes, "Activity"),
    )
    for entity, rows, source_entity in entities:
        for row in rows:
            if row.issue is None:
                continue
            data.quarantine.append(
                {
                    "org_id": spec.org_id,
                    "entity": entity,
                    "file": source_entity,
                    "sheet": None,
                    "row": None,
                    "source_id": row.source_id,
                    "column": row.issue.field,
                    "field": row.issue.field,
                    "raw_value": row.issue.raw_value,
                    "severity": row.issue.severity,
                    "reason": row.issue.reason,
                }
            )
    body = {
        "version": "6.9.0",
        "clock": CIVI_CLOCK,
        "options": {
            name: {str(k): list(v) for k, v in values.items()}
            for name, values in CIVI_OPTIONS.items()
        },
        "records": tables,
    }
    path = folder / CIVICRM_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_dump_site(body), encoding="utf-8", newline="\n")
    return {"site": CIVICRM_FILE}


def _dump_site(body: dict[str, Any]) -> str:
    """One record per line: readable and diffable."""
    lines = ["{"]
    for key in ("version", "clock"):
        lines.append(f" {json.dumps(key)}: {json.dumps(body[key])},")
    lines.append(f' "options": {json.dumps(body["options"], ensure_ascii=False)},')
    lines.append(' "records": {')
    entities = list(body["records"].items())
    for i, (entity, rows) in enumerate(entities):
        inner = ",\n".join(f"   {json.dumps(r, ensure_ascii=False)}" for r in rows)
        comma = "," if i < len(entities) - 1 else ""
        lines.append(f"  {json.dumps(entity)}: [\n{inner}\n  ]{comma}")
    lines += [" }", "}"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------


def generate(out: Path) -> dict[str, Any]:
    """Write every demo file under ``out`` and return the truth it wrote."""
    rng = Random(SEED)
    people_maker_rng = Random(SEED + 1)  # messy extra people, kept apart from the main draw
    by_org = build_people(rng)
    extra_people = People(people_maker_rng)
    for records in by_org.values():
        for rec in records:
            extra_people.keys.add(
                People.key(rec.identity.given, rec.identity.family, rec.identity.birth_date)
            )
    members: dict[str, Any] = {}
    for org in ORG_IDS:
        data = MemberData(SPECS[org], records=by_org[org])
        assign_ids(rng, org, data.records)
        data.records.sort(key=lambda r: r.source_id)
        for rec in data.records:
            plan_activity(rng, data, rec)
        _sort_and_number(data)
        add_messy_rows(rng, extra_people, data)
        if org == "riverside_food":
            files = write_riverside(rng, data, out)
        else:
            files = write_csv_member(rng, data, out)
        members[org] = member_truth(data, files)
    # The Salesforce member draws from its own generator, so the files above never change
    # when it does.
    sf_rng = Random(SEED + 2)
    sf_people = People(sf_rng)
    sf_people.keys |= extra_people.keys
    data = build_salesforce_member(sf_rng, sf_people, by_org)
    files = write_salesforce_member(sf_rng, data, out)
    members[SALESFORCE_ORG] = member_truth(data, files)
    # The CiviCRM member likewise has its own generator.
    civi_rng = Random(SEED + 3)
    civi_people = People(civi_rng)
    civi_people.keys |= extra_people.keys | sf_people.keys
    civi = build_civicrm_member(civi_rng, civi_people, by_org, data)
    files = write_civicrm_member(civi_rng, civi, out)
    members[CIVICRM_ORG] = member_truth(civi, files)
    truth = {
        "generator": "sample_data/generate.py",
        "seed": SEED,
        "notes": TRUTH_NOTES,
        "taxonomy": _taxonomy_areas(),
        "members": members,
    }
    (out / "truth.json").write_text(_dump_truth(truth), encoding="utf-8", newline="\n")
    return truth


def main(argv: list[str] | None = None) -> None:
    """Command line: write the demo files (default: next to this script)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write into")
    args = parser.parse_args(argv)
    truth = generate(args.out)
    for org, body in truth["members"].items():
        print(
            f"{org}: {len(body['people'])} people, {len(body['engagements'])} engagements, "
            f"{len(body['deliveries'])} deliveries, {len(body['outcomes'])} outcomes, "
            f"{len(body['quarantine'])} rows set aside"
        )


if __name__ == "__main__":
    main()
