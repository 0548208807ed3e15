"""Synthetic person records with known truth, to measure the hub's linkage (issue #5).

Run ``.venv/bin/python -m benchmarks.linkage.generate --people 100000 --orgs 30 --seed 1
--out /tmp/linkbench``. The same arguments always give the same files. It writes:

- ``records.parquet``: the columns of ``canonical.person`` that linkage reads (org_id,
  source_id, given_name, family_name, birth_date, email, phone, postcode, consent_to_share),
  with phones, postcodes, names and e-mails written the way each member would type them;
- ``truth.parquet``: ``org_id, source_id, true_person_id``;
- ``hard_pairs.parquet``: pairs of records of *different* people that a linker is tempted to
  merge (``twins``, ``parent_child``, ``household_shared_contact``, ``common_name``);
- ``hard_matches.parquet``: pairs of records of the *same* person that are hard to find
  (``moved``, ``married``, ``nickname``, ``dob_swap``, ``typo``) and that the consent rule
  allows the hub to merge;
- ``manifest.json``: the arguments, counts and how long generation took.

Why synthetic: linkage quality cannot be measured on real members' data without the truth,
and real people's data must never sit in a benchmark. Everything here is invented: names are
drawn at random from lists (with a realistic skew, so "Mohammed Khan" and "James Smith"
are common and hard), e-mails are at example.org/.com/.net, postcodes are random codes in
real-looking districts, and phone numbers are UK-shaped (07 mobiles, area-code landlines)
with random digits drawn from the seed. Ofcom's drama ranges (07700 900000-900999 and the like)
hold only about a thousand numbers each, too few for a million people, so these numbers may
happen to exist: they are test data only and must never be dialled or messaged.

Every hard pair is checked against the records as written: a pair is listed only if the
property it claims really holds after the usual normalisation (case, accents, spacing,
phone and postcode format), so a kind's count is what a linker actually faces.

It scales: all randomness is drawn with numpy in whole arrays, strings are built by DuckDB
from those arrays, so 1,000,000 people (~1.4M records) take a minute or two and well under
the memory of a small machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import unicodedata
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from nicknames import NickNamer

from benchmarks.harness import peak_mb
from benchmarks.linkage.score import HARD_MATCH_KINDS, HARD_NON_MATCH_KINDS, linkable_key_sql

# --- names ------------------------------------------------------------------------------
# Ordered from most to least frequent; weights fall off as 1/(rank + k) so the first few are
# very common (the real difficulty of "very common names") and the tail is long.

MALE = (
    "Mohammed", "James", "David", "John", "Oliver", "Muhammad", "Michael", "Daniel",
    "Thomas", "William", "Robert", "George", "Jack", "Harry", "Noah", "Richard", "Paul",
    "Mark", "Christopher", "Andrew", "Joseph", "Samuel", "Matthew", "Peter", "Ahmed", "Ali",
    "Charlie", "Leo", "Arthur", "Oscar", "Jacob", "Henry", "Alexander", "Joshua", "Benjamin",
    "Edward", "Stephen", "Anthony", "Kevin", "Steven", "Ian", "Gary", "Alan", "Brian",
    "Jonathan", "Adam", "Luke", "Ryan", "Liam", "Connor", "Callum", "Lewis", "Ethan",
    "Dylan", "Alfie", "Freddie", "Theo", "Archie", "Isaac", "Lucas", "Max", "Logan",
    "Finley", "Harvey", "Mason", "Reggie", "Omar", "Yusuf", "Ibrahim", "Hassan", "Hussain",
    "Bilal", "Zain", "Ayaan", "Mohammad", "Arjun", "Rohan", "Vikram", "Sanjay", "Amit",
    "Rajesh", "Krzysztof", "Piotr", "Tomasz", "Jakub", "Kacper", "Mateusz", "Kwame", "Kofi",
    "Chinedu", "Emeka", "Tunde", "Oluwaseun", "Wei", "Jun", "Hao", "José", "André",
    "François", "Jérôme", "Zoltán", "Luca", "Marco", "Stefan", "Andrei", "Mihai", "Bogdan",
    "Kai", "Ronan", "Cameron", "Fraser", "Angus", "Hamish", "Euan", "Niall", "Ciarán",
    "Seán", "Rhys", "Dafydd", "Gareth", "Owen", "Iwan", "Aled", "Frederick", "Albert",
    "Alfred", "Francis", "Lawrence", "Nicholas", "Timothy", "Raymond", "Kenneth", "Ronald",
    "Donald", "Gerald", "Leonard", "Stanley", "Walter", "Harold", "Ernest", "Bernard",
    "Douglas", "Dennis", "Derek", "Terence", "Roy", "Barry", "Trevor", "Keith", "Colin",
    "Graham", "Neil", "Simon", "Patrick", "Sean", "Declan", "Kieran", "Jamal", "Tyrone",
    "Marcus", "Leroy", "Winston", "Desmond", "Delroy",
)  # fmt: skip
FEMALE = (
    "Olivia", "Mary", "Sarah", "Amelia", "Emma", "Sophie", "Jessica", "Emily", "Charlotte",
    "Elizabeth", "Fatima", "Aisha", "Isla", "Ava", "Grace", "Lily", "Chloe", "Hannah",
    "Lucy", "Margaret", "Susan", "Patricia", "Helen", "Karen", "Julie", "Rebecca", "Laura",
    "Rachel", "Amy", "Lauren", "Megan", "Victoria", "Samantha", "Nicola", "Claire", "Kelly",
    "Lisa", "Michelle", "Angela", "Tracey", "Dawn", "Jacqueline", "Deborah", "Catherine",
    "Katherine", "Jennifer", "Joanne", "Natalie", "Ella", "Freya", "Florence", "Mia", "Ivy",
    "Willow", "Rosie", "Sophia", "Isabella", "Daisy", "Poppy", "Evie", "Phoebe", "Matilda",
    "Maya", "Alice", "Ruby", "Millie", "Harper", "Evelyn", "Sienna", "Zoë", "Zoe", "Chloé",
    "Siân", "Seren", "Ffion", "Cerys", "Bethan", "Rhiannon", "Niamh", "Aoife", "Siobhán",
    "Róisín", "Caoimhe", "Eilidh", "Maryam", "Zainab", "Khadija", "Amina", "Hafsa",
    "Ayesha", "Noor", "Zara", "Priya", "Anjali", "Sunita", "Pooja", "Neha", "Deepa",
    "Kavita", "Gurpreet", "Harpreet", "Wiktoria", "Zofia", "Agnieszka", "Katarzyna",
    "Joanna", "Magdalena", "Ngozi", "Chioma", "Adaeze", "Abena", "Ama", "Funmilayo", "Mei",
    "Xin", "Hui", "Renée", "Hélène", "Inés", "María", "Lucía", "Ana", "Elena", "Ioana",
    "Andreea", "Linda", "Barbara", "Christine", "Janet", "Pauline", "Sandra", "Carol",
    "Brenda", "Jean", "Joan", "Dorothy", "Doris", "Irene", "Betty", "Edith", "Gladys",
    "Winifred", "Mabel", "Ada", "Annie", "Mary Ann", "Anne-Marie", "Rose", "Theresa",
    "Josephine", "Louise", "Frances", "Alexandra", "Jane", "Judith", "Abigail", "Anna",
    "Yvonne", "Marcia", "Precious", "Blessing",
)  # fmt: skip
SURNAMES = (
    "Smith", "Jones", "Williams", "Khan", "Patel", "Taylor", "Brown", "Davies", "Evans",
    "Wilson", "Thomas", "Johnson", "Roberts", "Ali", "Ahmed", "Robinson", "Thompson",
    "Wright", "Walker", "White", "Edwards", "Hughes", "Green", "Hall", "Hussain", "Lewis",
    "Harris", "Clarke", "Jackson", "Wood", "Turner", "Martin", "Cooper", "Hill", "Begum",
    "Ward", "Morris", "Moore", "Clark", "Lee", "King", "Baker", "Harrison", "Morgan",
    "Singh", "Allen", "James", "Scott", "Phillips", "Watson", "Davis", "Parker", "Price",
    "Bennett", "Young", "Griffiths", "Mitchell", "Kelly", "Cook", "Carter", "Richardson",
    "Bailey", "Collins", "Bell", "Shaw", "Murphy", "Miller", "Cox", "Richards", "Kaur",
    "Shah", "Sharma", "Mistry", "Chauhan", "Rahman", "Islam", "Uddin", "Akhtar", "Iqbal",
    "Mahmood", "Hussein", "Nowak", "Kowalski", "Wiśniewski", "Kowalczyk", "Lewandowski",
    "Wójcik", "Okafor", "Okonkwo", "Adeyemi", "Mensah", "Owusu", "Boateng", "Asante",
    "Chen", "Wang", "Li", "Zhang", "Liu", "Nguyen", "Tran", "O'Brien", "O'Neill",
    "O'Connor", "Byrne", "Ryan", "Walsh", "McCarthy", "MacDonald", "McLean", "Campbell",
    "Stewart", "Robertson", "Reid", "Fraser", "Macleod", "Müller", "García", "Rodríguez",
    "Fernández", "López", "Martínez", "Silva", "Santos", "Pereira", "Costa", "Rossi",
    "Russo", "Popescu", "Ionescu", "Kovács", "Öztürk", "Demir", "Doğan", "Pugh", "Powell",
    "Rees", "Lloyd", "Jenkins", "Owen", "Parry", "Pritchard", "Llewellyn", "Gray", "Wells",
    "Webb", "Simpson", "Stevens", "Matthews", "Marshall", "Chapman", "Ellis", "Mason",
    "Holmes", "Rogers", "Fox", "Barnes", "Knight", "Butler", "Russell", "Dixon", "Hunt",
    "Mills", "Palmer", "Graham", "Lawrence", "Fisher", "Hamilton", "Gibson", "Grant",
    "Murray", "Ford", "Harvey", "Sullivan", "Spencer", "Pearson", "Andrews", "Gordon",
    "Burton", "Holland", "Kennedy", "Hart", "Dean", "Hayes", "Francis", "Brooks", "Lowe",
    "Barker", "Atkinson", "Stone", "Fletcher", "Reynolds",
)  # fmt: skip
# A long tail of invented English-looking surnames (Ashworth, Thornfield, ...) so that most
# people do not share a surname with thousands of others, as in a real population.
_TAIL_HEADS = (
    "Ash", "Brad", "Brook", "Church", "Cole", "Cran", "Dal", "Fair", "Hal", "Hart", "Holm",
    "Lang", "Mar", "Mid", "Mor", "New", "North", "Ox", "Pen", "Red", "Ring", "Rad", "Shel",
    "Stan", "Thorn", "Wake", "Wal", "West", "Whit", "Brom", "Pick", "Stock", "Sut",
    "Hather", "Ather", "Bar", "Bur", "Clay", "Elm", "Hay",
)  # fmt: skip
_TAIL_ENDS = (
    "ley", "ton", "field", "wood", "worth", "ford", "by", "well", "more", "den", "ham",
    "hurst", "stone", "bridge", "brook", "cliffe", "gate", "land", "shaw", "wick",
)  # fmt: skip
TAIL_SURNAMES = tuple(
    name for name in (h + e for h, e in product(_TAIL_HEADS, _TAIL_ENDS)) if name not in SURNAMES
)
NAMED_SURNAME_SHARE = 0.6  # the rest of the mass is spread evenly over the invented tail
VERY_COMMON = 5  # the first 5 given names of each sex and surnames make "common_name" pairs
# Given names and surnames are not independent: some full names are far more common than
# their parts' frequencies suggest. A share of adults get one of these.
COMMON_FULL_NAMES = (
    ("Mohammed", "Khan"), ("Mohammed", "Ali"), ("Muhammad", "Hussain"), ("Mohammed", "Ahmed"),
    ("James", "Smith"), ("David", "Jones"), ("John", "Smith"), ("David", "Williams"),
    ("Fatima", "Begum"), ("Olivia", "Smith"), ("Sarah", "Jones"), ("Priya", "Patel"),
)  # fmt: skip
P_COMMON_FULL_NAME = 0.03  # half are dropped: the combination is for the other sex

# Everyday nicknames a member might write instead of the full name; only those the
# ``nicknames`` package also knows are used, so a linker using that package can find them.
PREFERRED_NICKNAMES: dict[str, tuple[str, ...]] = {
    "robert": ("Bob", "Rob", "Bobby"), "william": ("Bill", "Will", "Billy"),
    "margaret": ("Peggy", "Maggie", "Meg"), "elizabeth": ("Liz", "Beth", "Betty", "Lizzie"),
    "james": ("Jim", "Jimmy", "Jamie"), "john": ("Jack", "Johnny"), "david": ("Dave",),
    "michael": ("Mike", "Mick"), "richard": ("Rich", "Rick", "Dick"),
    "thomas": ("Tom", "Tommy"), "joseph": ("Joe",), "patricia": ("Pat", "Trish"),
    "susan": ("Sue", "Susie"), "catherine": ("Cathy", "Katy"), "katherine": ("Kate", "Kathy"),
    "jennifer": ("Jen", "Jenny"), "rebecca": ("Becky", "Becca"),
    "alexander": ("Alex", "Sandy"), "christopher": ("Chris",), "anthony": ("Tony",),
    "daniel": ("Dan", "Danny"), "matthew": ("Matt",), "samuel": ("Sam",),
    "benjamin": ("Ben",), "edward": ("Ed", "Eddie", "Ted"), "frederick": ("Fred", "Freddie"),
    "oliver": ("Ollie",), "henry": ("Harry",), "jacob": ("Jake",),
    "isabella": ("Bella", "Issy"), "charlotte": ("Lottie",), "victoria": ("Vicky", "Tori"),
    "samantha": ("Sam",), "jessica": ("Jess",), "deborah": ("Debbie", "Deb"),
    "dorothy": ("Dot", "Dolly"), "josephine": ("Jo", "Josie"), "abigail": ("Abby", "Abbie"),
    "nicholas": ("Nick", "Nicky"), "timothy": ("Tim",), "kenneth": ("Ken", "Kenny"),
    "ronald": ("Ron", "Ronnie"), "donald": ("Don",), "gerald": ("Gerry",),
    "leonard": ("Len", "Lenny"), "walter": ("Wally",), "harold": ("Harry",),
    "albert": ("Bert",), "alfred": ("Fred",), "francis": ("Frank",),
    "lawrence": ("Larry",), "raymond": ("Ray",), "peter": ("Pete",), "stephen": ("Steve",),
    "andrew": ("Andy", "Drew"), "jonathan": ("Jon", "Jonny"), "frances": ("Fran",),
    "alexandra": ("Alex",), "judith": ("Judy",), "theresa": ("Tess", "Tessa"),
    "winifred": ("Winnie",), "jacqueline": ("Jackie", "Jacqui"), "emily": ("Em", "Emmy"),
    "anne": ("Annie",), "joan": ("Jo",), "douglas": ("Doug",), "terence": ("Terry",),
    "bernard": ("Bernie",), "ernest": ("Ernie",), "joshua": ("Josh",), "mary": ("Molly",),
    "amelia": ("Millie", "Mel"), "helen": ("Ellie",), "gareth": ("Gary",),
}  # fmt: skip

# --- places and numbers -----------------------------------------------------------------
# (postcode area, number of districts used, landline area code, share of the population).
# Districts are real-looking outward codes; the inward part is random, so postcodes are
# well formed but invented. Landline numbers use the area's dialling code.
AREAS = (
    ("M", 40, "0161", 6), ("B", 40, "0121", 6), ("LS", 29, "0113", 4), ("L", 38, "0151", 4),
    ("S", 36, "0114", 3), ("BS", 41, "0117", 3), ("NE", 40, "0191", 3), ("G", 53, "0141", 4),
    ("CF", 48, "029", 3), ("EH", 55, "0131", 3), ("BD", 24, "01274", 2), ("SK", 23, "0161", 2),
    ("OL", 16, "0161", 2), ("NG", 25, "0115", 3), ("LE", 19, "0116", 3), ("CV", 13, "024", 2),
    ("E", 18, "020", 5), ("N", 22, "020", 4), ("SE", 28, "020", 5), ("SW", 20, "020", 4),
    ("BT", 20, "028", 2), ("YO", 32, "01904", 1), ("CB", 11, "01223", 1), ("PL", 9, "01752", 1),
)  # fmt: skip
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # the letters Royal Mail uses in inward codes
MOBILE_SPACE = 5 * 10**8  # 07[45789] followed by 8 digits
EMAIL_DOMAINS = ("example.org", "example.com", "example.net")

# --- how members write things -----------------------------------------------------------
PHONE_STYLES = 6  # E.164, "07700 900123", "07700900123", "(0161) 496 0000", +44 (0), 0044
POSTCODE_STYLES = 5  # "M14 5AB", "m14 5ab", "M145AB", "M14  5AB", "m145ab"
ID_STYLES = 5  # CiviCRM integer, Salesforce 18-char, prefixed, year/number, UUID
ID_PREFIXES = ("CL", "REF", "MEM", "CR", "ID", "P", "SU", "BEN")

# --- the population ---------------------------------------------------------------------
HOUSEHOLD_SIZES = (0.34, 0.30, 0.15, 0.12, 0.06, 0.03)  # P(size = 1..6)
P_PARTNER = 0.65  # second member of a household of 2+ is a partner, else a child
P_TWIN = 0.10  # a child following another child is their twin
P_JUNIOR = 0.20  # first son of a father is named after him
P_JR_SUFFIX = 0.3  # a junior's record says "Jr"
P_SAME_SURNAME_PARTNER = 0.7
P_DOUBLE_BARRELLED = 0.04
P_LANDLINE = 0.35  # per household
P_SHARED_EMAIL = 0.30  # per household of 2+
P_MOBILE_ADULT, P_MOBILE_CHILD = 0.9, 0.1
P_EMAIL_ADULT, P_EMAIL_CHILD = 0.76, 0.15
ORGS_PER_PERSON = (0.78, 0.14, 0.06, 0.02)  # P(known to 1..4 members)
P_DUPLICATE_IN_ORG = 0.05  # a person entered twice by one member
P_HOUSEHOLD_ORG = 0.6  # a person's first member is their household's member
P_LOCAL_ORG = 0.7  # otherwise a member in their own area, when there is one
P_NATIONAL_ORG = 0.2  # share of members that serve everywhere
P_BACKGROUND_TYPO = 0.015
# Later records of a person differ from the first in one way (or none).
VARIANTS = ("none", "moved", "married", "nickname", "dob_swap", "typo")
VARIANT_WEIGHTS = (0.40, 0.15, 0.10, 0.15, 0.10, 0.10)  # nickname and dob_swap apply to few
KIND_PRIORITY = {kind: i for i, kind in enumerate(HARD_NON_MATCH_KINDS)}

EPOCH_END = int(np.datetime64("2023-12-31", "D").astype(np.int64))
YEAR = 365.25


def _day(text: str) -> int:
    return int(np.datetime64(text, "D").astype(np.int64))


def ascii_fold(text: str) -> str:
    """Strip accents the way a member's old system would: Zoë -> Zoe, Doğan -> Dogan."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def email_part(text: str) -> str:
    """Lower-case ASCII letters only, for an e-mail local part (O'Brien -> obrien)."""
    return "".join(c for c in ascii_fold(text).lower() if c.isascii() and c.isalpha())


def _zipf(count: int, offset: float) -> np.ndarray:
    weights = 1.0 / (np.arange(count) + offset)
    return weights / weights.sum()


@dataclass(frozen=True)
class Lookups:
    """Name and place tables, as Arrow arrays to ``take`` from by index."""

    given: pa.Array  # GIVEN names, then their ASCII folds, then the nicknames
    given_email: pa.Array
    n_given: int
    nick_start: np.ndarray  # per given name: first index of its nicknames in ``given``
    nick_count: np.ndarray
    surnames: pa.Array  # surnames, then their ASCII folds
    surname_email: pa.Array
    n_surnames: int
    surname_p: np.ndarray
    male_p: np.ndarray
    female_p: np.ndarray
    outward: pa.Array
    area_p: np.ndarray
    area_first_district: np.ndarray
    area_districts: np.ndarray
    area_code: np.ndarray  # dialling code without the 0, e.g. 161
    area_code_len: np.ndarray  # digits including the 0, e.g. 4
    inward: pa.Array
    common_given: np.ndarray  # COMMON_FULL_NAMES as indices
    common_family: np.ndarray
    nickname_pairs: pa.Table  # (full, nick) as name keys, e.g. ("robert", "bob")


def build_lookups() -> Lookups:
    """The fixed tables; nicknames are the preferred ones the ``nicknames`` package knows."""
    given = list(MALE) + list(FEMALE)
    surnames = list(SURNAMES) + list(TAIL_SURNAMES)
    namer = NickNamer()
    nick_names: list[str] = []
    nick_start = np.zeros(len(given), dtype=np.int32)
    nick_count = np.zeros(len(given), dtype=np.int32)
    full_keys: list[str] = []
    for i, name in enumerate(given):
        known = namer.nicknames_of(name.lower())
        chosen = [n for n in PREFERRED_NICKNAMES.get(name.lower(), ()) if n.lower() in known]
        nick_start[i] = 2 * len(given) + len(nick_names)
        nick_count[i] = len(chosen)
        nick_names.extend(chosen)
        full_keys.extend([email_part(name)] * len(chosen))
    folded = [ascii_fold(n) for n in given]
    all_given = given + folded + nick_names
    surname_p = np.concatenate(
        [
            _zipf(len(SURNAMES), 15) * NAMED_SURNAME_SHARE,
            np.full(len(TAIL_SURNAMES), (1 - NAMED_SURNAME_SHARE) / len(TAIL_SURNAMES)),
        ]
    )
    outward: list[str] = []
    first: list[int] = []
    counts: list[int] = []
    for prefix, districts, _code, _share in AREAS:
        first.append(len(outward))
        counts.append(districts)
        outward.extend(f"{prefix}{d}" for d in range(1, districts + 1))
    area_p = np.array([share for *_rest, share in AREAS], dtype=float)
    inward = [f"{d}{x}{y}" for d in range(10) for x in INWARD_LETTERS for y in INWARD_LETTERS]
    return Lookups(
        given=pa.array(all_given),
        given_email=pa.array([email_part(n) for n in given]),
        n_given=len(given),
        nick_start=nick_start,
        nick_count=nick_count,
        surnames=pa.array(surnames + [ascii_fold(n) for n in surnames]),
        surname_email=pa.array([email_part(n) for n in surnames]),
        n_surnames=len(surnames),
        surname_p=surname_p / surname_p.sum(),
        male_p=_zipf(len(MALE), 8),
        female_p=_zipf(len(FEMALE), 8),
        outward=pa.array(outward),
        area_p=area_p / area_p.sum(),
        area_first_district=np.array(first, dtype=np.int32),
        area_districts=np.array(counts, dtype=np.int32),
        area_code=np.array([int(code[1:]) for _p, _d, code, _s in AREAS], dtype=np.int64),
        area_code_len=np.array([len(code) for _p, _d, code, _s in AREAS], dtype=np.int64),
        inward=pa.array(inward),
        common_given=np.array([given.index(g) for g, _f in COMMON_FULL_NAMES], dtype=np.int32),
        common_family=np.array([surnames.index(f) for _g, f in COMMON_FULL_NAMES], dtype=np.int32),
        nickname_pairs=pa.table({"full": full_keys, "nick": [email_part(n) for n in nick_names]}),
    )


def _pick(rng: np.random.Generator, p: np.ndarray, size: int, dtype: Any = np.int32) -> Any:
    """``size`` indices drawn with probabilities ``p`` (cumulative sum + binary search)."""
    cum = np.cumsum(p)
    cum[-1] = 1.0
    return np.searchsorted(cum, rng.random(size), side="right").astype(dtype)


def _distinct(rng: np.random.Generator, space: int, size: int) -> np.ndarray:
    """``size`` different numbers below ``space`` in random order (repeats only if the space
    is too small, which needs tens of millions of people in one dialling code)."""
    return rng.choice(space, size=size, replace=size > space).astype(np.int64)


def _district_in(rng: np.random.Generator, look: Lookups, area: np.ndarray) -> np.ndarray:
    """A random district of each given area."""
    offset = (rng.random(area.size) * look.area_districts[area]).astype(np.int32)
    return look.area_first_district[area] + offset


# --- people -----------------------------------------------------------------------------


def make_people(rng: np.random.Generator, n: int, look: Lookups) -> dict[str, np.ndarray]:
    """One entry per true person: households, names, birth dates, addresses and contacts.

    People are built in households so that the hard non-matches arise the way they do in
    life: twins and same-named fathers and sons share an address, families share a landline
    or an e-mail address.
    """
    sizes = _pick(rng, np.array(HOUSEHOLD_SIZES), n // 2 + 16) + 1
    while sizes.sum() < n:
        sizes = np.concatenate([sizes, _pick(rng, np.array(HOUSEHOLD_SIZES), n // 2 + 16) + 1])
    cum = np.cumsum(sizes)
    h = int(np.searchsorted(cum, n)) + 1
    sizes = sizes[:h].copy()
    sizes[-1] -= int(cum[h - 1]) - n
    starts = (np.cumsum(sizes) - sizes).astype(np.int64)
    hh = np.repeat(np.arange(h, dtype=np.int32), sizes)
    pos = np.arange(n) - np.repeat(starts, sizes)
    head = np.repeat(starts, sizes)  # index of each person's head of household

    has_partner = (sizes >= 2) & (rng.random(h) < P_PARTNER)
    has_children = sizes > 1 + has_partner
    role = np.where(pos == 0, 0, np.where((pos == 1) & has_partner[hh], 1, 2)).astype(np.int8)
    is_partner, is_child = role == 1, role == 2

    sex = rng.integers(0, 2, n, dtype=np.int8)  # 0 male, 1 female
    opposite = is_partner & (rng.random(n) < 0.9)
    sex[opposite] = 1 - sex[head[opposite]]

    # Birth dates: family heads 1950-1988, people living alone or as couples 1935-2005,
    # partners near the head, children 20-40 years after the head (never after 2023).
    lo = np.where(has_children[hh], _day("1950-01-01"), _day("1935-01-01"))
    hi = np.where(has_children[hh], _day("1988-12-31"), _day("2005-12-31"))
    dob = (lo + rng.random(n) * (hi - lo)).astype(np.int64)
    partner_dob = dob[head] + np.round(rng.normal(0, 4 * YEAR, n)).astype(np.int64)
    dob = np.where(is_partner, np.clip(partner_dob, _day("1935-01-01"), EPOCH_END - 18 * 366), dob)
    gap_max = np.minimum(40 * YEAR, EPOCH_END - dob[head])
    child_dob = dob[head] + 20 * YEAR + rng.random(n) * np.maximum(gap_max - 20 * YEAR, 0)
    dob = np.where(is_child, child_dob.astype(np.int64), dob)

    prev_child = np.zeros(n, dtype=bool)
    prev_child[1:] = is_child[1:] & is_child[:-1] & (hh[1:] == hh[:-1])
    twin = prev_child & (rng.random(n) < P_TWIN)
    twin_idx = np.nonzero(twin)[0]
    for _ in range(6):  # triplets: copy along the chain
        dob[twin_idx] = dob[twin_idx - 1]

    given = np.where(
        sex == 0,
        _pick(rng, look.male_p, n),
        _pick(rng, look.female_p, n) + len(MALE),
    ).astype(np.int32)

    fam_a = _pick(rng, look.surname_p, n)
    fam_b = np.where(rng.random(n) < P_DOUBLE_BARRELLED, _pick(rng, look.surname_p, n), -1)
    fam_b = np.where(fam_b == fam_a, -1, fam_b).astype(np.int32)
    combo = rng.integers(0, len(COMMON_FULL_NAMES), n)
    combo_given = look.common_given[combo]
    famous = (
        ~is_child
        & (rng.random(n) < P_COMMON_FULL_NAME)
        & (sex == (combo_given >= len(MALE)).astype(np.int8))
    )
    given[famous] = combo_given[famous]
    fam_a[famous] = look.common_family[combo[famous]]
    fam_b[famous] = -1
    same = is_child | (is_partner & (rng.random(n) < P_SAME_SURNAME_PARTNER))
    fam_a = np.where(same, fam_a[head], fam_a)
    fam_b = np.where(same, fam_b[head], np.where(is_partner, -1, fam_b))
    first_child = is_child & ~prev_child
    junior = first_child & (sex == 0) & (sex[head] == 0) & (rng.random(n) < P_JUNIOR)
    given[junior] = given[head[junior]]
    # Twins never share a given name: move to the next name of the same sex.
    for _ in range(3):
        clash = twin_idx[given[twin_idx] == given[twin_idx - 1]]
        if clash.size == 0:
            break
        base = np.where(sex[clash] == 0, 0, len(MALE))
        size = np.where(sex[clash] == 0, len(MALE), len(FEMALE))
        given[clash] = base + (given[clash] - base + 1) % size

    adult = dob <= EPOCH_END - 18 * 366
    married_fam = _pick(rng, look.surname_p, n)
    married_double = rng.random(n) < 0.25

    area_h = _pick(rng, look.area_p, h)
    district_h = _district_in(rng, look, area_h)
    inward_h = rng.integers(0, len(look.inward), h, dtype=np.int32)
    # Movers stay in their area six times in ten.
    new_area = np.where(rng.random(n) < 0.6, area_h[hh], _pick(rng, look.area_p, n))
    new_district = _district_in(rng, look, new_area)
    new_inward = rng.integers(0, len(look.inward), n, dtype=np.int32)

    age_ok = dob <= EPOCH_END - 12 * 366
    has_mobile = rng.random(n) < np.where(age_ok, P_MOBILE_ADULT, P_MOBILE_CHILD)
    # Numbers drawn without replacement: nobody shares a mobile by accident, and a mover's
    # new number has nothing in common with the old one.
    mobiles = _distinct(rng, MOBILE_SPACE, 2 * n)
    mobile, new_mobile = mobiles[:n], mobiles[n:]
    has_landline_h = rng.random(h) < P_LANDLINE
    local_len = 11 - look.area_code_len[area_h]
    code_h = look.area_code[area_h]
    x = np.zeros(h, dtype=np.int64)
    for code in np.unique(code_h):  # distinct local numbers within each dialling code
        here = np.nonzero(code_h == code)[0]
        x[here] = _distinct(rng, 8 * 10 ** (int(local_len[here[0]]) - 1), here.size)
    landline_h = code_h * 10**local_len + 2 * 10 ** (local_len - 1) + x

    has_email = rng.random(n) < np.where(age_ok, P_EMAIL_ADULT, P_EMAIL_CHILD)
    email_space = 10 ** max(4, len(str(n)) + 1)
    email_no = _distinct(rng, email_space, n)
    shared_email_h = (sizes >= 2) & (rng.random(h) < P_SHARED_EMAIL)
    shared_no_h = _distinct(rng, email_space, h)

    return {
        "hh": hh,
        "head": head,
        "sex": sex,
        "twin": twin,
        "junior": junior,
        "dob": dob,
        "adult": adult,
        "given": given,
        "fam_a": fam_a.astype(np.int32),
        "fam_b": fam_b,
        "married_fam": married_fam,
        "married_double": married_double,
        "district": district_h[hh],
        "inward": inward_h[hh],
        "area": area_h[hh],
        "new_district": new_district,
        "new_inward": new_inward,
        "has_mobile": has_mobile,
        "mobile": mobile,
        "new_mobile": new_mobile,
        "has_landline": has_landline_h[hh],
        "landline": landline_h[hh],
        "has_email": has_email,
        "email_no": email_no,
        "email_style": rng.integers(0, 4, n, dtype=np.int8),
        "email_domain": rng.integers(0, 3, n, dtype=np.int8),
        "shared_email": shared_email_h[hh],
        "shared_no": shared_no_h[hh],
        "shared_style": rng.integers(0, 2, h, dtype=np.int8)[hh],
        "shared_domain": rng.integers(0, 3, h, dtype=np.int8)[hh],
        "shared_fam": fam_a[head].astype(np.int32),
        "household_sizes": sizes,
        "household_starts": starts,
    }


# --- members ----------------------------------------------------------------------------


def make_orgs(rng: np.random.Generator, count: int, look: Lookups) -> dict[str, np.ndarray]:
    """Each member's habits: how it writes phones, postcodes, names and ids, how complete
    its records are, how often consent is missing, where it works and how big it is."""
    national = rng.random(count) < P_NATIONAL_ORG
    return {
        "size_p": _zipf(count, 2)[rng.permutation(count)],
        "area": np.where(national, -1, _pick(rng, look.area_p, count)),
        "id_style": rng.integers(0, ID_STYLES, count, dtype=np.int8),
        "id_base": rng.integers(1000, 90000, count),
        "phone_style": rng.integers(0, PHONE_STYLES, count, dtype=np.int8),
        "postcode_style": rng.integers(0, POSTCODE_STYLES, count, dtype=np.int8),
        "consistency": rng.uniform(0.7, 0.95, count),
        "name_case": _pick(rng, np.array([0.65, 0.25, 0.10]), count, np.int8),
        "keep_accents": rng.random(count) < 0.6,
        "double_style": _pick(rng, np.array([0.5, 0.3, 0.2]), count, np.int8),
        "trailing": np.where(rng.random(count) < 0.6, 0.0, rng.uniform(0.05, 0.2, count)),
        "email_case": _pick(rng, np.array([0.7, 0.2, 0.1]), count, np.int8),
        "dob_missing": rng.uniform(0.02, 0.15, count),
        "email_missing": rng.uniform(0.05, 0.2, count),
        "phone_missing": rng.uniform(0.05, 0.15, count),
        "postcode_missing": rng.uniform(0.02, 0.08, count),
        "no_consent": rng.uniform(0.03, 0.18, count),
    }


def _org_for(rng: np.random.Generator, orgs: dict[str, np.ndarray], area: np.ndarray) -> np.ndarray:
    """A member for each person in ``area``: a local one (when the area has one) seven
    times in ten, otherwise any member by size."""
    anywhere = _pick(rng, orgs["size_p"], area.size)
    local_lists = [np.nonzero(orgs["area"] == a)[0] for a in range(len(AREAS))]
    width = max(1, max(len(x) for x in local_lists))
    table = np.zeros((len(AREAS), width), dtype=np.int32)
    local_n = np.zeros(len(AREAS), dtype=np.int32)
    for a, members in enumerate(local_lists):
        table[a, : len(members)] = members
        local_n[a] = len(members)
    pick_local = (rng.random(area.size) < P_LOCAL_ORG) & (local_n[area] > 0)
    local = table[area, (rng.random(area.size) * local_n[area]).astype(np.int32)]
    return np.where(pick_local, local, anywhere).astype(np.int32)


def make_records(
    rng: np.random.Generator,
    people: dict[str, np.ndarray],
    orgs: dict[str, np.ndarray],
    look: Lookups,
) -> dict[str, np.ndarray]:
    """Which member holds which person, how many times, and how each copy differs."""
    n = people["dob"].size
    n_orgs = orgs["area"].size
    k = np.minimum(_pick(rng, np.array(ORGS_PER_PERSON), n) + 1, n_orgs)
    pid = np.repeat(np.arange(n, dtype=np.int64), k)
    starts = np.cumsum(k) - k
    slot = np.arange(pid.size) - np.repeat(starts, k)
    household_org = _org_for(rng, orgs, people["area"][people["household_starts"]])
    org = _org_for(rng, orgs, people["area"][pid])
    home = (slot == 0) & (rng.random(pid.size) < P_HOUSEHOLD_ORG)
    org[home] = household_org[people["hh"][pid[home]]]
    for _ in range(200):  # one person, distinct members: redraw collisions
        key = pid * n_orgs + org
        order = np.argsort(key, kind="stable")
        clash = order[1:][key[order][1:] == key[order][:-1]]
        if clash.size == 0:
            break
        org[clash] = _pick(rng, orgs["size_p"], clash.size)
    dup_people = np.nonzero(rng.random(n) < P_DUPLICATE_IN_ORG)[0]
    pid = np.concatenate([pid, dup_people])
    org = np.concatenate([org, org[starts[dup_people]]])
    rec_no = np.concatenate([slot, k[dup_people]]).astype(np.int16)
    r = pid.size

    variant = np.where(rec_no > 0, _pick(rng, np.array(VARIANT_WEIGHTS), r, np.int8), 0)
    dob = people["dob"][pid]
    days = dob.astype("datetime64[D]")
    month_start = days.astype("datetime64[M]")
    month = (month_start - days.astype("datetime64[Y]").astype("datetime64[M]")).astype(
        np.int64
    ) + 1
    day = (days - month_start.astype("datetime64[D]")).astype(np.int64) + 1
    given = people["given"][pid]
    # A variant the person cannot have (a child marrying, Zara's nickname, a birthday after
    # the 12th swapped) leaves the record as it is.
    cannot = (
        ((variant == VARIANTS.index("married")) & ~people["adult"][pid])
        | ((variant == VARIANTS.index("nickname")) & (look.nick_count[given] == 0))
        | ((variant == VARIANTS.index("dob_swap")) & ((day > 12) | (day == month)))
    )
    variant[cannot] = VARIANTS.index("none")
    swapped = (days.astype("datetime64[Y]").astype("datetime64[M]") + (day - 1)).astype(
        "datetime64[D]"
    ).astype(np.int64) + (month - 1)
    dob = np.where(variant == VARIANTS.index("dob_swap"), swapped, dob)

    def follow(style: np.ndarray, choices: int) -> np.ndarray:
        """The member's house style, except when someone typed it their own way."""
        keep = rng.random(r) < orgs["consistency"][org]
        return np.where(keep, style[org], rng.integers(0, choices, r)).astype(np.int8)

    typo_target = np.where(
        variant == VARIANTS.index("typo"),
        np.where(rng.random(r) < 0.4, 1, 2),
        np.where(rng.random(r) < P_BACKGROUND_TYPO, rng.integers(1, 3, r), 0),
    ).astype(np.int8)
    nick_u = rng.random(r)
    nick = look.nick_start[given] + (nick_u * look.nick_count[given]).astype(np.int32)
    keep_accents = np.where(rng.random(r) < 0.9, orgs["keep_accents"][org], True)
    given_idx = np.where(
        variant == VARIANTS.index("nickname"),
        nick,
        given + np.where(keep_accents, 0, look.n_given),
    )
    fold = np.where(keep_accents, 0, look.n_surnames)
    fam_b = people["fam_b"][pid]

    moved = variant == VARIANTS.index("moved")
    district = np.where(moved, people["new_district"][pid], people["district"][pid])
    inward = np.where(moved, people["new_inward"][pid], people["inward"][pid])
    postcode_missing = rng.random(r) < orgs["postcode_missing"][org]

    use_landline = people["has_landline"][pid] & (
        ~people["has_mobile"][pid] | (rng.random(r) < 0.3)
    )
    phone = np.where(
        use_landline,
        people["landline"][pid],
        _mobile_number(people["mobile"][pid]),
    )
    has_phone = use_landline | people["has_mobile"][pid]
    new_phone = rng.random(r) < 0.85
    phone = np.where(moved & new_phone, _mobile_number(people["new_mobile"][pid]), phone)
    has_phone = np.where(moved, new_phone, has_phone)
    has_phone &= rng.random(r) >= orgs["phone_missing"][org]
    area_len = np.where(
        phone < 10**9 * 7, look.area_code_len[people["area"][pid]], 5
    )  # landlines start 1 or 2 once the 0 is dropped; mobiles 7

    shared = people["shared_email"][pid]
    personal = people["has_email"][pid]
    use_shared = shared & (~personal | (rng.random(r) < 0.4))
    email_kind = np.where(use_shared, 2, np.where(personal, 1, 0)).astype(np.int8)
    email_kind[rng.random(r) < orgs["email_missing"][org]] = 0

    return {
        "pid": pid,
        "org": org,
        "rec_no": rec_no,
        "variant": variant,
        "dob": dob,
        "dob_missing": rng.random(r) < orgs["dob_missing"][org],
        "given_idx": given_idx,
        "fam_a_idx": people["fam_a"][pid] + fold,
        "fam_b_idx": np.where(fam_b >= 0, fam_b + fold, -1),
        "married_idx": np.where(
            variant == VARIANTS.index("married"), people["married_fam"][pid] + fold, -1
        ),
        "married_double": people["married_double"][pid],
        "junior": people["junior"][pid] & (rng.random(r) < P_JR_SUFFIX),
        "typo_target": typo_target,
        "typo_op": _pick(rng, np.array([0.3, 0.25, 0.25, 0.2]), r, np.int8),
        "typo_u": rng.random(r, dtype=np.float32),
        "name_case": np.where(rng.random(r) < 0.9, orgs["name_case"][org], 0).astype(np.int8),
        "double_style": orgs["double_style"][org],
        "trail_given": rng.random(r) < orgs["trailing"][org],
        "trail_family": rng.random(r) < orgs["trailing"][org],
        "district": district,
        "inward": inward,
        "postcode_missing": postcode_missing,
        "postcode_style": follow(orgs["postcode_style"], POSTCODE_STYLES),
        "phone": np.where(has_phone, phone, -1),
        "phone_area_len": area_len,
        "phone_style": follow(orgs["phone_style"], PHONE_STYLES),
        "email_kind": email_kind,
        "email_case": np.where(rng.random(r) < 0.9, orgs["email_case"][org], 0).astype(np.int8),
        "consent": rng.random(r) >= orgs["no_consent"][org],
    }


def _mobile_number(code: np.ndarray) -> np.ndarray:
    """The 10 digits after the 0 of a mobile: 7, then one of 4 5 7 8 9, then 8 digits."""
    second = np.array([4, 5, 7, 8, 9], dtype=np.int64)[code // 10**8]
    return 7 * 10**9 + second * 10**8 + code % 10**8


# --- strings (DuckDB) -------------------------------------------------------------------

_MACROS = r"""
CREATE OR REPLACE MACRO typo(s, op, p) AS CASE
    WHEN s IS NULL OR length(s) < 3 THEN s
    WHEN op = 0 THEN substr(s, 1, p - 1) || substr(s, p + 1, 1) || substr(s, p, 1)
        || substr(s, p + 2)
    WHEN op = 1 THEN substr(s, 1, p - 1) || substr(s, p + 1)
    WHEN op = 2 THEN substr(s, 1, p) || substr(s, p)
    WHEN s LIKE '%rn%' THEN regexp_replace(s, 'rn', 'm')
    WHEN s LIKE '%m%' THEN regexp_replace(s, 'm', 'rn')
    WHEN s LIKE '%cl%' THEN regexp_replace(s, 'cl', 'd')
    WHEN s LIKE '%h%' THEN regexp_replace(s, 'h', 'li')
    WHEN s LIKE '%e%' THEN regexp_replace(s, 'e', 'c')
    ELSE substr(s, 1, p - 1) || substr(s, p + 1)
END;
CREATE OR REPLACE MACRO cased(s, c) AS CASE c WHEN 1 THEN upper(s) WHEN 2 THEN lower(s)
    ELSE s END;
CREATE OR REPLACE MACRO spaced_local(l) AS CASE length(l)
    WHEN 7 THEN substr(l, 1, 3) || ' ' || substr(l, 4)
    WHEN 8 THEN substr(l, 1, 4) || ' ' || substr(l, 5)
    ELSE l END;
CREATE OR REPLACE MACRO name_key(s) AS nullif(regexp_replace(
    regexp_replace(lower(strip_accents(s)), '[^a-z]', '', 'g'), 'jr$', ''), '');
CREATE OR REPLACE MACRO postcode_key(s) AS nullif(upper(regexp_replace(s, '\s', '', 'g')), '');
CREATE OR REPLACE MACRO digits(s) AS regexp_replace(s, '[^0-9]', '', 'g');
CREATE OR REPLACE MACRO phone_key(s) AS nullif(CASE
    WHEN digits(s) LIKE '0044%' THEN '0' || ltrim(substr(digits(s), 5), '0')
    WHEN digits(s) LIKE '44%' THEN '0' || ltrim(substr(digits(s), 3), '0')
    ELSE digits(s) END, '');
"""

# The record's strings from the arrays: names with the member's habits and the variant's
# change, a typo when one is due, phones and postcodes in the member's format.
_RECORDS_SQL = r"""
WITH a AS (
    SELECT
        *,
        CASE WHEN fam_b IS NULL THEN fam_a
            WHEN double_style = 0 THEN fam_a || '-' || fam_b
            WHEN double_style = 1 THEN fam_a || ' ' || fam_b
            ELSE fam_b END AS birth_family
    FROM arrays
),
b AS (
    SELECT
        *,
        CASE WHEN married IS NULL THEN birth_family
            WHEN married_double AND fam_b IS NULL AND double_style = 0
                THEN fam_a || '-' || married
            WHEN married_double AND fam_b IS NULL AND double_style = 1
                THEN fam_a || ' ' || married
            ELSE married END AS family0
    FROM a
),
c AS (
    SELECT
        *,
        CASE typo_target WHEN 1 THEN given0 WHEN 2 THEN family0 END AS typo_in
    FROM b
),
d AS (
    SELECT
        *,
        -- p in [2, length - 1]: the first letter is rarely mistyped (and often blocked on).
        typo(typo_in, typo_op,
            2 + CAST(floor(typo_u * greatest(length(typo_in) - 2, 1)) AS INTEGER)) AS typo_out,
        '0' || CAST(phone_num AS VARCHAR) AS nat,
        CASE WHEN id_style = 4 THEN md5(org_id || ':' || CAST(seq AS VARCHAR)) END AS h
    FROM c
)
SELECT
    rid,
    pid,
    rec_no,
    variant,
    org_id,
    CASE id_style
        WHEN 0 THEN CAST(id_base + seq AS VARCHAR)
        WHEN 1 THEN '0038d0000' || to_base(seq + 1679616, 36, 6) || 'AAQ'
        WHEN 2 THEN id_prefix || '-' || lpad(CAST(seq + 1 AS VARCHAR), 6, '0')
        WHEN 3 THEN CAST(2016 + seq % 9 AS VARCHAR) || '/' || lpad(CAST(seq AS VARCHAR), 6, '0')
        ELSE substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' || substr(h, 13, 4) || '-'
            || substr(h, 17, 4) || '-' || substr(h, 21)
    END AS source_id,
    cased(CASE WHEN typo_target = 1 THEN typo_out ELSE given0 END, name_case)
        || CASE WHEN trail_given THEN ' ' ELSE '' END AS given_name,
    cased(CASE WHEN typo_target = 2 THEN typo_out ELSE family0 END
        || CASE WHEN junior THEN ' Jr' ELSE '' END, name_case)
        || CASE WHEN trail_family THEN ' ' ELSE '' END AS family_name,
    birth_date,
    CASE WHEN email_local IS NULL THEN NULL
        WHEN email_case = 1 THEN upper(substr(email_local, 1, 1)) || substr(email_local, 2)
            || '@' || email_domain
        WHEN email_case = 2 THEN upper(email_local || '@' || email_domain)
        ELSE email_local || '@' || email_domain END AS email,
    CASE WHEN phone_num IS NULL THEN NULL
        WHEN phone_style = 0 THEN '+44' || substr(nat, 2)
        WHEN phone_style = 1 THEN substr(nat, 1, area_len) || ' '
            || spaced_local(substr(nat, area_len + 1))
        WHEN phone_style = 2 THEN nat
        WHEN phone_style = 3 AND area_len = 5 AND nat LIKE '07%'
            THEN substr(nat, 1, 5) || ' ' || substr(nat, 6, 3) || ' ' || substr(nat, 9)
        WHEN phone_style = 3 THEN '(' || substr(nat, 1, area_len) || ') '
            || spaced_local(substr(nat, area_len + 1))
        WHEN phone_style = 4 THEN '+44 (0)' || substr(nat, 2, area_len - 1) || ' '
            || spaced_local(substr(nat, area_len + 1))
        ELSE '0044 ' || substr(nat, 2, area_len - 1) || ' '
            || spaced_local(substr(nat, area_len + 1))
    END AS phone,
    CASE WHEN outward IS NULL THEN NULL
        WHEN postcode_style = 0 THEN outward || ' ' || inward
        WHEN postcode_style = 1 THEN lower(outward || ' ' || inward)
        WHEN postcode_style = 2 THEN outward || inward
        WHEN postcode_style = 3 THEN outward || '  ' || inward
        ELSE lower(outward || inward) END AS postcode,
    consent_to_share,
    true_person_id
FROM d
ORDER BY rid
"""


def _email_locals(
    people: dict[str, np.ndarray], rec: dict[str, np.ndarray], look: Lookups
) -> tuple[pa.Array, pa.Array]:
    """Each record's e-mail local part and domain (null when it has none).

    A personal address is built from the person's own names and a number unique to them
    (olivia.smith48213, osmith48213, ...); a household's shared one from its surname
    (thesmiths512, smith.family512).
    """
    pid = rec["pid"]
    kind = rec["email_kind"]
    given = look.given_email.take(pa.array(people["given"][pid]))
    family = look.surname_email.take(pa.array(people["fam_a"][pid]))
    shared_family = look.surname_email.take(pa.array(people["shared_fam"][pid]))
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")  # no bar on stderr for long queries
    try:
        table = pa.table(
            {
                "kind": kind,
                "g": given,
                "f": family,
                "sf": shared_family,
                "no": people["email_no"][pid],
                "sno": people["shared_no"][pid],
                "style": people["email_style"][pid],
                "sstyle": people["shared_style"][pid],
                "domain": people["email_domain"][pid],
                "sdomain": people["shared_domain"][pid],
            }
        )
        con.register("e", table)
        out = con.sql(
            """
            SELECT
                CASE kind
                    WHEN 1 THEN CASE style
                        WHEN 0 THEN g || '.' || f || CAST(no AS VARCHAR)
                        WHEN 1 THEN g || f || CAST(no AS VARCHAR)
                        WHEN 2 THEN substr(g, 1, 1) || f || CAST(no AS VARCHAR)
                        ELSE f || '.' || g || CAST(no AS VARCHAR) END
                    WHEN 2 THEN CASE sstyle
                        WHEN 0 THEN 'the' || sf || 's' || CAST(sno AS VARCHAR)
                        ELSE sf || '.family' || CAST(sno AS VARCHAR) END
                END AS local,
                CASE kind WHEN 1 THEN domain WHEN 2 THEN sdomain END AS domain
            FROM e
            """
        ).to_arrow_table()
    finally:
        con.close()
    domains = pa.array(EMAIL_DOMAINS).take(out["domain"].combine_chunks())
    return out["local"].combine_chunks(), domains


def _null_where(values: np.ndarray, missing: np.ndarray) -> pa.Array:
    """An Arrow array of indices with nulls where ``missing`` (for ``take``)."""
    return pa.array(values, mask=missing)


def build_strings(
    con: duckdb.DuckDBPyConnection,
    people: dict[str, np.ndarray],
    orgs: dict[str, np.ndarray],
    rec: dict[str, np.ndarray],
    look: Lookups,
    org_ids: list[str],
    rng: np.random.Generator,
) -> None:
    """Create table ``rec`` (one row per record, in output order) in ``con``."""
    r = rec["pid"].size
    order = rng.permutation(r)  # output order: nothing about truth in the row order
    rec = {name: values[order] for name, values in rec.items()}
    org = rec["org"]
    by_org = np.argsort(org, kind="stable")
    counts = np.bincount(org, minlength=len(org_ids))
    seq = np.empty(r, dtype=np.int64)
    seq[by_org] = np.arange(r) - np.repeat(np.cumsum(counts) - counts, counts)
    true_id = rng.permutation(people["dob"].size).astype(np.int64)  # hides household order

    email_local, email_domain = _email_locals(people, rec, look)
    arrays = pa.table(
        {
            "rid": np.arange(r, dtype=np.int64),
            "pid": rec["pid"],
            "rec_no": rec["rec_no"],
            "variant": pa.array(VARIANTS).take(pa.array(rec["variant"])),
            "org_id": pa.array(org_ids).take(pa.array(org)),
            "seq": seq,
            "id_style": orgs["id_style"][org],
            "id_base": orgs["id_base"][org],
            "id_prefix": pa.array(ID_PREFIXES).take(pa.array(org % len(ID_PREFIXES))),
            "given0": look.given.take(pa.array(rec["given_idx"])),
            "fam_a": look.surnames.take(pa.array(rec["fam_a_idx"])),
            "fam_b": look.surnames.take(_null_where(rec["fam_b_idx"], rec["fam_b_idx"] < 0)),
            "married": look.surnames.take(_null_where(rec["married_idx"], rec["married_idx"] < 0)),
            "married_double": rec["married_double"],
            "double_style": rec["double_style"],
            "junior": rec["junior"],
            "typo_target": rec["typo_target"],
            "typo_op": rec["typo_op"],
            "typo_u": rec["typo_u"],
            "name_case": rec["name_case"],
            "trail_given": rec["trail_given"],
            "trail_family": rec["trail_family"],
            "birth_date": pa.array(
                rec["dob"].astype(np.int32), type=pa.int32(), mask=rec["dob_missing"]
            ).cast(pa.date32()),
            "email_local": email_local,  # null where the record has no e-mail
            "email_domain": email_domain,
            "email_case": rec["email_case"],
            "phone_num": pa.array(rec["phone"], mask=rec["phone"] < 0),
            "area_len": rec["phone_area_len"],
            "phone_style": rec["phone_style"],
            "outward": look.outward.take(_null_where(rec["district"], rec["postcode_missing"])),
            "inward": look.inward.take(pa.array(rec["inward"])),
            "postcode_style": rec["postcode_style"],
            "consent_to_share": rec["consent"],
            "true_person_id": true_id[rec["pid"]],
        }
    )
    con.register("arrays", arrays)
    con.execute(f"CREATE TABLE rec AS {_RECORDS_SQL}")
    con.unregister("arrays")


# --- hard pairs -------------------------------------------------------------------------


def person_pairs(people: dict[str, np.ndarray], look: Lookups) -> pa.Table:
    """Candidate pairs of different people, by kind; records are filtered later."""
    pid = np.arange(people["dob"].size, dtype=np.int64)
    parts: list[tuple[np.ndarray, np.ndarray, str]] = []
    twin = pid[people["twin"]]
    parts.append((twin - 1, twin, "twins"))
    junior = pid[people["junior"]]
    parts.append((people["head"][junior], junior, "parent_child"))
    sizes, starts = people["household_sizes"], people["household_starts"]
    contact = people["shared_email"][starts] | people["has_landline"][starts]
    for i in range(len(HOUSEHOLD_SIZES)):
        for j in range(i + 1, len(HOUSEHOLD_SIZES)):
            households = np.nonzero(contact & (sizes > j))[0]
            parts.append(
                (starts[households] + i, starts[households] + j, "household_shared_contact")
            )
    given, fam = people["given"], people["fam_a"]
    top_given = (given < VERY_COMMON) | ((given >= len(MALE)) & (given < len(MALE) + VERY_COMMON))
    combos = look.common_given.astype(np.int64) * look.n_surnames + look.common_family
    common = (
        (top_given & (fam < VERY_COMMON))
        | np.isin(given.astype(np.int64) * look.n_surnames + fam, combos)
    ) & (people["fam_b"] < 0)
    chosen = pid[common]
    # Neighbours after sorting by name then district: same name, often the same district.
    order = np.lexsort((people["district"][chosen], fam[chosen], given[chosen]))
    chosen = chosen[order]
    same = (given[chosen][1:] == given[chosen][:-1]) & (fam[chosen][1:] == fam[chosen][:-1])
    parts.append((chosen[:-1][same], chosen[1:][same], "common_name"))
    return pa.table(
        {
            "pid_l": np.concatenate([p[0] for p in parts]).astype(np.int64),
            "pid_r": np.concatenate([p[1] for p in parts]).astype(np.int64),
            "kind": np.concatenate([np.full(p[0].size, p[2], dtype=object) for p in parts]),
            "prio": np.concatenate(
                [np.full(p[0].size, KIND_PRIORITY[p[2]], dtype=np.int8) for p in parts]
            ),
        }
    )


_KEYS_SQL = """
CREATE TABLE keys AS
SELECT
    rid, pid, rec_no, variant, org_id, source_id, consent_to_share, birth_date AS dob,
    name_key(given_name) AS gkey, name_key(family_name) AS fkey,
    postcode_key(postcode) AS pkey, phone_key(phone) AS phkey,
    nullif(lower(trim(email)), '') AS ekey
FROM rec
"""

_PAIR_ORDER = """
    CASE WHEN a.org_id < b.org_id OR (a.org_id = b.org_id AND a.source_id < b.source_id)
        THEN a.org_id ELSE b.org_id END AS org_id_l,
    CASE WHEN a.org_id < b.org_id OR (a.org_id = b.org_id AND a.source_id < b.source_id)
        THEN a.source_id ELSE b.source_id END AS source_id_l,
    CASE WHEN a.org_id < b.org_id OR (a.org_id = b.org_id AND a.source_id < b.source_id)
        THEN b.org_id ELSE a.org_id END AS org_id_r,
    CASE WHEN a.org_id < b.org_id OR (a.org_id = b.org_id AND a.source_id < b.source_id)
        THEN b.source_id ELSE a.source_id END AS source_id_r
"""

# A pair is listed only if its records, as written, have the property its kind claims.
_HARD_PAIRS_SQL = f"""
SELECT org_id_l, source_id_l, org_id_r, source_id_r, kind FROM (
    SELECT {_PAIR_ORDER}, pp.kind, pp.prio
    FROM person_pairs AS pp
    JOIN keys AS a ON a.pid = pp.pid_l
    JOIN keys AS b ON b.pid = pp.pid_r
    WHERE CASE pp.kind
        WHEN 'twins' THEN a.fkey = b.fkey AND a.dob = b.dob AND a.pkey = b.pkey
            AND a.gkey <> b.gkey
        WHEN 'parent_child' THEN a.gkey = b.gkey AND a.fkey = b.fkey AND a.pkey = b.pkey
            AND abs(a.dob - b.dob) BETWEEN 19 * 365 AND 41 * 366
        WHEN 'household_shared_contact' THEN a.ekey = b.ekey OR a.phkey = b.phkey
        WHEN 'common_name' THEN a.gkey = b.gkey AND a.fkey = b.fkey
    END
    QUALIFY row_number() OVER (
        PARTITION BY least(a.rid, b.rid), greatest(a.rid, b.rid) ORDER BY pp.prio) = 1
)
ORDER BY kind, org_id_l, source_id_l, org_id_r, source_id_r
"""

_HARD_MATCHES_SQL = f"""
SELECT {_PAIR_ORDER}, b.variant AS kind
FROM keys AS a
JOIN keys AS b ON a.pid = b.pid AND a.rec_no = 0 AND b.rec_no > 0
JOIN linkable AS la ON la.org_id = a.org_id AND la.source_id = a.source_id
JOIN linkable AS lb ON lb.org_id = b.org_id AND lb.source_id = b.source_id
WHERE la.linkable_id = lb.linkable_id AND CASE b.variant
    WHEN 'moved' THEN a.pkey <> b.pkey
    WHEN 'married' THEN a.fkey <> b.fkey
    WHEN 'nickname' THEN EXISTS (SELECT 1 FROM nickname_pairs AS n
        WHERE (n.full = a.gkey AND n.nick = b.gkey) OR (n.full = b.gkey AND n.nick = a.gkey))
    WHEN 'dob_swap' THEN a.dob <> b.dob AND day(a.dob) <= 12
        AND make_date(year(a.dob), day(a.dob), month(a.dob)) = b.dob
    WHEN 'typo' THEN (a.gkey <> b.gkey OR a.fkey <> b.fkey)
        AND levenshtein(a.gkey, b.gkey) + levenshtein(a.fkey, b.fkey) <= 2
    ELSE FALSE
END
ORDER BY kind, org_id_l, source_id_l, org_id_r, source_id_r
"""

RECORD_SCHEMA = pa.schema(
    [
        pa.field("org_id", pa.string(), nullable=False),
        pa.field("source_id", pa.string(), nullable=False),
        pa.field("given_name", pa.string()),
        pa.field("family_name", pa.string()),
        pa.field("birth_date", pa.date32()),
        pa.field("email", pa.string()),
        pa.field("phone", pa.string()),
        pa.field("postcode", pa.string()),
        pa.field("consent_to_share", pa.bool_(), nullable=False),
    ]
)
TRUTH_SCHEMA = pa.schema(
    [
        pa.field("org_id", pa.string(), nullable=False),
        pa.field("source_id", pa.string(), nullable=False),
        pa.field("true_person_id", pa.int64(), nullable=False),
    ]
)
PAIR_SCHEMA = pa.schema(
    [
        pa.field("org_id_l", pa.string(), nullable=False),
        pa.field("source_id_l", pa.string(), nullable=False),
        pa.field("org_id_r", pa.string(), nullable=False),
        pa.field("source_id_r", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
    ]
)


def _write(con: duckdb.DuckDBPyConnection, sql: str, schema: pa.Schema, path: Path) -> int:
    table = con.sql(sql).to_arrow_table().cast(schema)
    pq.write_table(table, path)
    return table.num_rows


def _counts(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, int]:
    return {str(k): int(v) for k, v in con.execute(sql).fetchall()}


def generate(people: int, orgs: int, seed: int, out: Path) -> dict[str, Any]:
    """Write the benchmark files into ``out`` and return the manifest."""
    if people < 1 or orgs < 1:
        raise ValueError("--people and --orgs must be at least 1")
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    look = build_lookups()
    width = max(2, len(str(orgs)))
    org_ids = [f"org_{i + 1:0{width}d}" for i in range(orgs)]
    population = make_people(rng, people, look)
    members = make_orgs(rng, orgs, look)
    records = make_records(rng, population, members, look)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")  # no bar on stderr for long queries
    try:
        con.execute("SET preserve_insertion_order = true")
        con.execute(_MACROS)
        build_strings(con, population, members, records, look, org_ids, rng)
        del records
        columns = ", ".join(RECORD_SCHEMA.names)
        records_sql = f"SELECT {columns} FROM rec ORDER BY rid"
        n_records = _write(con, records_sql, RECORD_SCHEMA, out / "records.parquet")
        _write(
            con,
            "SELECT org_id, source_id, true_person_id FROM rec ORDER BY rid",
            TRUTH_SCHEMA,
            out / "truth.parquet",
        )
        con.execute(_KEYS_SQL)
        con.register("person_pairs", person_pairs(population, look))
        con.register("nickname_pairs", look.nickname_pairs)
        del population
        con.execute(f"CREATE TABLE linkable AS {linkable_key_sql('rec')}")
        _write(con, _HARD_PAIRS_SQL, PAIR_SCHEMA, out / "hard_pairs.parquet")
        _write(con, _HARD_MATCHES_SQL, PAIR_SCHEMA, out / "hard_matches.parquet")
        pair_counts = _counts(
            con, f"SELECT kind, COUNT(*) FROM '{out / 'hard_pairs.parquet'}' GROUP BY kind"
        )
        match_counts = _counts(
            con, f"SELECT kind, COUNT(*) FROM '{out / 'hard_matches.parquet'}' GROUP BY kind"
        )
        stats = con.execute(
            """
            WITH spans AS (SELECT pid, COUNT(DISTINCT org_id) AS orgs, COUNT(*) AS n
                           FROM rec GROUP BY pid)
            SELECT
                (SELECT COUNT(*) FILTER (WHERE orgs >= 2) FROM spans),
                (SELECT SUM(n) - COUNT(*) FROM (SELECT COUNT(*) AS n FROM rec
                                                GROUP BY pid, org_id)),
                COUNT(*) FILTER (WHERE NOT consent_to_share),
                COUNT(*) FILTER (WHERE birth_date IS NULL),
                COUNT(*) FILTER (WHERE email IS NULL),
                COUNT(*) FILTER (WHERE phone IS NULL),
                COUNT(*) FILTER (WHERE postcode IS NULL)
            FROM rec
            """
        ).fetchone()
    finally:
        con.close()
    manifest: dict[str, Any] = {
        "generator": "benchmarks.linkage.generate",
        "parameters": {"people": people, "orgs": orgs, "seed": seed},
        "counts": {
            "records": n_records,
            "people": people,
            "orgs": orgs,
            "people_in_2plus_orgs": int(stats[0]),
            "within_org_duplicates": int(stats[1]),
            "records_without_consent": int(stats[2]),
            "missing": {
                "birth_date": int(stats[3]),
                "email": int(stats[4]),
                "phone": int(stats[5]),
                "postcode": int(stats[6]),
            },
            "hard_pairs": {kind: pair_counts.get(kind, 0) for kind in HARD_NON_MATCH_KINDS},
            "hard_matches": {kind: match_counts.get(kind, 0) for kind in HARD_MATCH_KINDS},
        },
        "phone_region": "GB",
        "files": {
            "records.parquet": RECORD_SCHEMA.names,
            "truth.parquet": TRUTH_SCHEMA.names,
            "hard_pairs.parquet": PAIR_SCHEMA.names,
            "hard_matches.parquet": PAIR_SCHEMA.names,
        },
        "versions": {
            "numpy": np.__version__,
            "pyarrow": pa.__version__,
            "duckdb": duckdb.__version__,
        },
        "generation_seconds": round(time.perf_counter() - started, 2),
        "peak_rss_mb": round(peak_mb(), 1),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    """CLI: generate, then print the manifest's counts and timing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=100_000, help="true people")
    parser.add_argument("--orgs", type=int, default=30, help="member organisations")
    parser.add_argument("--seed", type=int, default=1, help="same seed, same files")
    parser.add_argument("--out", type=Path, required=True, help="folder for the files")
    args = parser.parse_args(argv)
    manifest = generate(args.people, args.orgs, args.seed, args.out)
    print(json.dumps(manifest["counts"], indent=2))
    print(
        f"wrote {args.out} in {manifest['generation_seconds']} s, "
        f"peak RSS {manifest['peak_rss_mb']} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
