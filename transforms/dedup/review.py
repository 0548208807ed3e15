"""The review queue: pairs the model is unsure about, shown masked, decided by a person.

``transforms.linkage`` queues the pairs it scores between the review and accept thresholds in
``hub.link_review`` and honours every decision in ``hub.link_decision`` on later runs (an
accept links the pair, a reject keeps it apart, whatever the model says). This module is what
sits between the two: it lists the pairs still waiting (:func:`pending_pairs`) and records a
reviewer's word (:func:`record_decision`). ``hub review`` is its command-line face.

**What a reviewer sees.** Enough to judge whether two records are one person, not enough to
learn who that person is: a reviewer works for the network, not for the member that holds
the record, and the screen may be shared or photographed. Each field is shown masked on both
sides, next to a verdict on how the two values compare (:data:`AGREEMENTS`); the verdict is
worked out on the full values, so nothing is lost by not showing them.

=============  ============================================  ===============================
field          shown                                         example (full value)
=============  ============================================  ===============================
given name     first letter of each part, fixed-width mask   ``M•••`` (Marta)
family name    first letter of each part, fixed-width mask   ``Q••• J•••`` (Quill-Jones)
birth date     the year only                                 ``1984-••-••`` (1984-03-07)
email          first letter, the top-level domain            ``m•••@•••.org`` (marta@x.org)
phone          the last three digits                         ``•••123`` (+447700900123)
postcode       the outward code (district) of a UK postcode  ``M14 •••`` (M14 5AB); ``•••``
=============  ============================================  ===============================

The mask is the same width whatever the value's length, so it does not give the length away.
Values are masked after normalisation (``transforms.dedup.normalise``), which is what the
linker compared: a name shows without titles and accents, and a value the linker could not
read (an e-mail that is not one) shows as missing (``—``), consistently with its verdict.
Shown in full, because they are not personal data and a reviewer needs them: each record's
member (``org_id``), its id in the member's own system (``source_id``, to look the record up
there) and whether the person consented to sharing.

The verdicts follow the levels of the linkage model (``transforms.dedup.model``) and are
computed with the same DuckDB functions, so "similar" here is "similar" to the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import duckdb
import pyarrow as pa

from transforms.dedup.normalise import INPUT_COLUMNS, normalise_people
from transforms.warehouse import Session, Warehouse

DECISIONS = ("accept", "reject")
"""What a reviewer can decide: the two records are one person (accept) or two (reject)."""

MASK = "•••"
MISSING = "—"

AGREEMENTS = (
    "same",
    "nickname",
    "similar",
    "shares a part",
    "swapped day/month",
    "one digit apart",
    "within a year",
    "same district",
    "different",
    "missing",
)
"""Every verdict a field can get; "missing" when either side has no (readable) value."""

FIELDS: tuple[tuple[str, str], ...] = (
    ("given_name", "given name"),
    ("family_name", "family name"),
    ("birth_date", "birth date"),
    ("email", "email"),
    ("phone", "phone"),
    ("postcode", "postcode"),
)
"""(column, label) of each compared field, in the order a reviewer reads them."""


class ReviewError(ValueError):
    """A review request that cannot be carried out; the message says why and what to do."""


class NotLinkedError(ReviewError):
    """The warehouse has never been through a linkage run, so there is no queue to read."""


class PairIds(NamedTuple):
    """The four ids that name a pair of person records (as in hub.link_review)."""

    org_id_l: str
    source_id_l: str
    org_id_r: str
    source_id_r: str


@dataclass(frozen=True)
class FieldView:
    """One field of a pair as a reviewer sees it: both values masked, and their verdict."""

    label: str
    left: str
    right: str
    agreement: str


@dataclass(frozen=True)
class ReviewPair:
    """A queued pair with no decision yet, ready to show."""

    ids: PairIds
    match_probability: float
    model_version: str | None
    queued_at: datetime | None
    consent_l: bool
    consent_r: bool
    fields: tuple[FieldView, ...]

    def agreement(self, label: str) -> str:
        """The verdict for one field, by its label ("birth date")."""
        return next(f.agreement for f in self.fields if f.label == label)


PERSON_COLUMNS = INPUT_COLUMNS[2:]  # after org_id and source_id

# Deleted records are left out: linkage no longer places them, so a decision would be moot.
# A pair decided in either orientation is decided (the linker reads decisions both ways).
_QUEUE_SQL = f"""
SELECT q.org_id_l, q.source_id_l, q.org_id_r, q.source_id_r, q.match_probability,
       q.model_version, q.queued_at,
       {", ".join(f"l.{c}" for c in PERSON_COLUMNS)},
       {", ".join(f"r.{c}" for c in PERSON_COLUMNS)}
FROM hub.link_review AS q
JOIN canonical.person AS l ON l.org_id = q.org_id_l AND l.source_id = q.source_id_l
JOIN canonical.person AS r ON r.org_id = q.org_id_r AND r.source_id = q.source_id_r
WHERE NOT l.is_deleted AND NOT r.is_deleted
  AND NOT EXISTS (
    SELECT 1 FROM hub.link_decision AS d
    WHERE (d.org_id_l = q.org_id_l AND d.source_id_l = q.source_id_l
           AND d.org_id_r = q.org_id_r AND d.source_id_r = q.source_id_r)
       OR (d.org_id_l = q.org_id_r AND d.source_id_l = q.source_id_r
           AND d.org_id_r = q.org_id_l AND d.source_id_r = q.source_id_l)
  )
"""
_QUEUE_ORDER = (
    " ORDER BY q.match_probability DESC, q.org_id_l, q.source_id_l, q.org_id_r, q.source_id_r"
)

# One verdict per field, mirroring the comparison levels of transforms.dedup.model (same
# functions, same thresholds), over normalised records l and r.
_VERDICTS_SQL = """
SELECT p.pair,
    CASE WHEN l.given_name IS NULL OR r.given_name IS NULL THEN 'missing'
        WHEN l.given_name = r.given_name THEN 'same'
        WHEN l.given_canonical = r.given_canonical
            AND split_part(l.given_name, ' ', 1) <> split_part(r.given_name, ' ', 1)
            THEN 'nickname'
        WHEN l.given_canonical = r.given_canonical
            OR jaro_winkler_similarity(l.given_name, r.given_name) >= 0.8 THEN 'similar'
        ELSE 'different' END AS given_name,
    CASE WHEN l.family_name IS NULL OR r.family_name IS NULL THEN 'missing'
        WHEN l.family_name = r.family_name THEN 'same'
        WHEN jaro_winkler_similarity(l.family_name, r.family_name) >= 0.92 THEN 'similar'
        WHEN len(list_intersect(l.family_tokens, r.family_tokens)) > 0 THEN 'shares a part'
        WHEN jaro_winkler_similarity(l.family_name, r.family_name) >= 0.8 THEN 'similar'
        ELSE 'different' END AS family_name,
    CASE WHEN l.birth_date IS NULL OR r.birth_date IS NULL THEN 'missing'
        WHEN l.birth_date = r.birth_date THEN 'same'
        WHEN l.birth_date = r.birth_date_swapped THEN 'swapped day/month'
        WHEN levenshtein(CAST(l.birth_date AS VARCHAR), CAST(r.birth_date AS VARCHAR)) <= 1
            THEN 'one digit apart'
        WHEN abs(date_diff('day', l.birth_date, r.birth_date)) <= 365 THEN 'within a year'
        ELSE 'different' END AS birth_date,
    CASE WHEN l.email IS NULL OR r.email IS NULL THEN 'missing'
        WHEN l.email = r.email THEN 'same'
        ELSE 'different' END AS email,
    CASE WHEN l.phone IS NULL OR r.phone IS NULL THEN 'missing'
        WHEN l.phone = r.phone THEN 'same'
        WHEN levenshtein(l.phone, r.phone) <= 1 THEN 'one digit apart'
        ELSE 'different' END AS phone,
    CASE WHEN l.postcode IS NULL OR r.postcode IS NULL THEN 'missing'
        WHEN l.postcode = r.postcode THEN 'same'
        WHEN l.postcode_outward = r.postcode_outward THEN 'same district'
        ELSE 'different' END AS postcode
FROM pairs AS p
JOIN records AS l ON l.unique_id = p.unique_id_l
JOIN records AS r ON r.unique_id = p.unique_id_r
"""


def pending_pairs(warehouse: Warehouse, org_id: str | None = None) -> list[ReviewPair]:
    """The queued pairs nobody has decided yet, most likely matches first.

    ``org_id`` keeps the pairs with a record of that member on either side (a member's own
    reviewer). Raises :class:`NotLinkedError` when people have never been linked here.
    """
    with warehouse.connect() as session:
        _require_linked(session)
        sql, params = _QUEUE_SQL, []
        if org_id is not None:
            sql += " AND (q.org_id_l = ? OR q.org_id_r = ?)"
            params = [org_id, org_id]
        rows = session.fetchall(sql + _QUEUE_ORDER, params)
    if not rows:
        return []
    width = len(PERSON_COLUMNS)
    people: dict[str, tuple] = {}
    queue: list[tuple[PairIds, float, str | None, datetime | None, str, str]] = []
    for row in rows:
        ids = PairIds(*(str(v) for v in row[:4]))
        left, right = row[7 : 7 + width], row[7 + width : 7 + 2 * width]
        uid_l, uid_r = _uid(ids.org_id_l, ids.source_id_l), _uid(ids.org_id_r, ids.source_id_r)
        people[uid_l] = (ids.org_id_l, ids.source_id_l, *left)
        people[uid_r] = (ids.org_id_r, ids.source_id_r, *right)
        queue.append((ids, float(row[4]), row[5], row[6], uid_l, uid_r))
    records = normalise_people(_people_table(list(people.values())))
    by_uid = {r["unique_id"]: r for r in records.to_pylist()}
    verdicts = _verdicts(records, [(q[4], q[5]) for q in queue])
    pairs = []
    for index, (ids, probability, version, queued_at, uid_l, uid_r) in enumerate(queue):
        left, right = by_uid[uid_l], by_uid[uid_r]
        pairs.append(
            ReviewPair(
                ids=ids,
                match_probability=probability,
                model_version=version,
                queued_at=queued_at,
                consent_l=bool(left["consent"]),
                consent_r=bool(right["consent"]),
                fields=tuple(
                    FieldView(label, mask(column, left), mask(column, right), verdicts[index][i])
                    for i, (column, label) in enumerate(FIELDS)
                ),
            )
        )
    return pairs


def parse_decision(word: str) -> str:
    """``accept`` or ``reject`` from what a person typed (any case), or a clear error."""
    decision = word.strip().lower()
    if decision not in DECISIONS:
        raise ReviewError(f"unknown decision {word!r}: say accept or reject")
    return decision


def record_decision(
    warehouse: Warehouse,
    pair: ReviewPair | PairIds | Sequence[str],
    decision: str,
    decided_by: str,
) -> str | None:
    """Record a person's decision on a pair; later linkage runs honour it over the model.

    ``pair`` is a queued pair or its four ids (org_id_l, source_id_l, org_id_r,
    source_id_r); the pair need not be queued, so a reviewer can also split two records the
    model linked, or join two it never compared. A decision replaces any earlier one on the
    same pair (in either orientation), and the pair leaves the queue at once rather than at
    the next run. Returns the decision it replaced, if any.
    """
    decision = parse_decision(decision)
    if not decided_by or not decided_by.strip():
        raise ReviewError("a decision needs the name of the person who made it")
    ids = pair.ids if isinstance(pair, ReviewPair) else PairIds(*(str(v) for v in pair))
    if (ids.org_id_l, ids.source_id_l) == (ids.org_id_r, ids.source_id_r):
        raise ReviewError(f"{ids.org_id_l}/{ids.source_id_l} is one record, not a pair")
    decided_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    with warehouse.connect() as session:
        _require_linked(session)
        for org_id, source_id in ((ids.org_id_l, ids.source_id_l), (ids.org_id_r, ids.source_id_r)):
            found = session.fetchall(
                "SELECT 1 FROM canonical.person WHERE org_id = ? AND source_id = ?",
                [org_id, source_id],
            )
            if not found:
                raise ReviewError(
                    f"no person record {source_id!r} from member {org_id!r} in the warehouse; "
                    "check the member and the record id (`hub review --list` shows the queue)"
                )
        either_way = (
            "(org_id_l = ? AND source_id_l = ? AND org_id_r = ? AND source_id_r = ?) "
            "OR (org_id_l = ? AND source_id_l = ? AND org_id_r = ? AND source_id_r = ?)"
        )
        both = [*ids, ids.org_id_r, ids.source_id_r, ids.org_id_l, ids.source_id_l]
        earlier = session.fetchall(
            f"SELECT decision FROM hub.link_decision WHERE {either_way}", both
        )
        session.execute(f"DELETE FROM hub.link_decision WHERE {either_way}", both)
        session.execute(
            "INSERT INTO hub.link_decision (org_id_l, source_id_l, org_id_r, source_id_r, "
            "decision, decided_by, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [*ids, decision, decided_by.strip(), decided_at],
        )
        session.execute(f"DELETE FROM hub.link_review WHERE {either_way}", both)
    return earlier[0][0] if earlier else None


def mask(column: str, record: dict) -> str:
    """One normalised field of a record, masked by the rule in the module docstring."""
    value = record.get(column)
    if value is None or value == "":
        return MISSING
    if column in ("given_name", "family_name"):
        return " ".join(part[0].upper() + MASK for part in str(value).split())
    if column == "birth_date":
        return f"{value.year}-••-••"
    if column == "email":
        local, _, domain = str(value).rpartition("@")
        return f"{local[:1]}{MASK}@{MASK}.{domain.rpartition('.')[2]}"
    if column == "phone":
        return MASK + str(value)[-3:]
    if column == "postcode":
        outward = record.get("postcode_outward")
        return f"{outward} {MASK}" if outward else MASK
    raise ValueError(f"no masking rule for {column!r}")


def _require_linked(session: Session) -> None:
    """Refuse, with the remedy, a warehouse that linkage has never run on.

    Every linkage run records its model in hub.linkage_model, so an empty (or absent) table
    means the queue has never been filled, which is not the same as an empty queue.
    """
    linked = session.table_exists("hub", "linkage_model") and session.fetchall(
        "SELECT 1 FROM hub.linkage_model LIMIT 1"
    )
    if not linked:
        raise NotLinkedError(
            "people have not been linked in this warehouse yet, so there is nothing to "
            "review: run `hub run` (it loads the members, then links people) first"
        )


def _uid(org_id: str, source_id: str) -> str:
    return f"{org_id}|{source_id}"


def _people_table(rows: list[tuple]) -> pa.Table:
    """Person rows as the Arrow table normalise_people reads, typed whatever the warehouse."""
    columns = ("org_id", "source_id", *PERSON_COLUMNS)
    types = {"birth_date": pa.date32(), "consent_to_share": pa.bool_()}
    return pa.table(
        {
            name: pa.array([row[i] for row in rows], types.get(name, pa.string()))
            for i, name in enumerate(columns)
        }
    )


def _verdicts(records: pa.Table, pairs: list[tuple[str, str]]) -> list[tuple[str, ...]]:
    """Per pair (in order), the verdict of each field in :data:`FIELDS`."""
    table = pa.table(
        {
            "pair": pa.array(range(len(pairs)), pa.int64()),
            "unique_id_l": pa.array([p[0] for p in pairs], pa.string()),
            "unique_id_r": pa.array([p[1] for p in pairs], pa.string()),
        }
    )
    with duckdb.connect() as con:
        con.register("records", records)
        con.register("pairs", table)
        rows = con.execute(_VERDICTS_SQL + " ORDER BY p.pair").fetchall()
    return [tuple(row[1:]) for row in rows]
