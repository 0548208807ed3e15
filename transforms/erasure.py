"""Erasure: forget one person on request, purge a departing member, keep both erased.

Why this module exists (issue #18): a person deleted at the source is handled by the loads
(deletion markers, blanked fields), but a person who asks to be forgotten while their record
still exists in the member's system, or a member that leaves the network, needs the hub to
erase on its own. Every layer is covered:

- ``raw_<org>`` and dlt's ``raw_<org>_staging`` copy: the person's row and every row that
  refers to them (emails, phones, addresses, case and activity links, engagements,
  deliveries, outcomes), and rows that only existed for them (a case or activity whose only
  contact was them, a household account no other contact uses);
- ``canonical.*`` and ``quarantine.rejected_rows``;
- ``hub.person_link``: the record's row is replaced by an anonymous placeholder, so the next
  linkage run sees a deleted record and re-links what is left of that person's cluster
  (the record may have been the bridge between two others), then drops it;
- ``hub.link_review`` and ``hub.link_decision`` rows naming the record;
- ``hub.activity`` / ``hub.published_activity`` rows of that person and member (rebuilt by
  the next publication without them).

A forgotten person is remembered only as a digest of ``org_id`` and their id in the member's
system (``subject_digest``), in ``hub.erasure_log``: after every later load the hub finds any
record with that digest again and erases it (``apply_erasures``), because the member's
system may still hold (and send) the record. The log says who asked, what was erased and
when; it never holds a name, a value or the id itself.
"""

from __future__ import annotations

import csv
import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from transforms.canonical import CANONICAL_TABLES, ensure_schema
from transforms.warehouse import Session, Warehouse

# Raw tables whose ``column`` holds the id of a person (the person table itself by its own
# id). Tables a member does not have are skipped, so one list serves every connector.
DIRECT_REFERENCES: tuple[tuple[str, str], ...] = (
    # Spreadsheets
    ("spreadsheet__person", "source_id"),
    ("spreadsheet__person_quarantine", "source_id"),
    ("spreadsheet__engagement", "person_source_id"),
    ("spreadsheet__service_delivery", "person_source_id"),
    ("spreadsheet__outcome", "person_source_id"),
    # Salesforce NPSP + PMM (the outcome object's contact column is the member's own field)
    ("npsp__contact", "id"),
    ("pmdm__program_engagement", "pmdm__contact__c"),
    ("pmdm__service_delivery", "pmdm__contact__c"),
    # CiviCRM
    ("civicrm__contact", "id"),
    ("civicrm__email", "contact_id"),
    ("civicrm__phone", "contact_id"),
    ("civicrm__address", "contact_id"),
    ("civicrm__contribution", "contact_id"),
    ("civicrm__case_contact", "contact_id"),
    ("civicrm__activity_contact", "contact_id"),
)
# The tables that hold the people themselves: where a forgotten id is looked for.
PERSON_TABLES: tuple[tuple[str, str], ...] = (
    ("spreadsheet__person", "source_id"),
    ("npsp__contact", "id"),
    ("civicrm__contact", "id"),
)
SALESFORCE_OUTCOME_TABLE = "npsp__outcome"
_CHUNK = 500


class ErasureError(ValueError):
    """An erasure that cannot be done as asked (the message says why and what to do)."""


def _check_org(org_id: str) -> None:
    """Member ids become schema names: anything else is refused before any SQL."""
    from connectors.members import ORG_ID_PATTERN

    if not ORG_ID_PATTERN.match(org_id):
        raise ErasureError(
            f"{org_id!r} is not a member id: 2-40 lower-case letters, digits or underscores, "
            "starting with a letter (see `hub members`)"
        )


def subject_digest(org_id: str, source_id: str) -> str:
    """What the log keeps of a forgotten person: a digest of member and record id."""
    return hashlib.sha256(f"{org_id}\x1f{source_id}".encode()).hexdigest()


@dataclass
class Erased:
    """Rows removed, per layer and table (counts only: safe to print and to log)."""

    rows: dict[str, int] = field(default_factory=dict)
    periods: set[str] = field(default_factory=set)  # quarters whose activity counted them

    def add(self, where: str, count: int) -> None:
        if count:
            self.rows[where] = self.rows.get(where, 0) + count

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def by_layer(self) -> dict[str, int]:
        """Rows per layer (raw, canonical, quarantine, links, activity)."""
        layers: dict[str, int] = {}
        for where, count in self.rows.items():
            layer = where.split(".")[0]
            layer = "raw" if layer.startswith("raw_") else layer
            layers[layer] = layers.get(layer, 0) + count
        return layers


@dataclass(frozen=True)
class ErasureEntry:
    """One line of ``hub.erasure_log``."""

    erasure_id: str
    action: str  # forget | remove-member
    org_id: str
    subject: str | None  # digest of the record id (forget), None for a whole member
    requested_by: str
    erased_at: datetime
    rows: dict[str, int]
    # Quarters whose figures counted the person (not logged: said once, to the operator).
    periods: tuple[str, ...] = ()


# --- helpers over the warehouse -------------------------------------------------------------


def _has(session: Session, schema: str, table: str, column: str | None = None) -> bool:
    if not session.table_exists(schema, table):
        return False
    return column is None or column in session.columns(schema, table)


def _in(column: str, values: Sequence[str]) -> str:
    return f"CAST({column} AS TEXT) IN ({', '.join('?' for _ in values)})"


def _chunks(values: Sequence[str]) -> Iterable[list[str]]:
    for start in range(0, len(values), _CHUNK):
        yield list(values[start : start + _CHUNK])


def _delete_in(
    session: Session, schema: str, table: str, column: str, values: Sequence[str]
) -> int:
    """Delete rows whose ``column`` (cast to text) is one of ``values``; return how many."""
    if not values or not _has(session, schema, table, column):
        return 0
    removed = 0
    for chunk in _chunks(values):
        where = _in(column, chunk)
        removed += session.fetchall(f"SELECT COUNT(*) FROM {schema}.{table} WHERE {where}", chunk)[
            0
        ][0]
        session.execute(f"DELETE FROM {schema}.{table} WHERE {where}", chunk)
    return removed


def _values_in(
    session: Session, schema: str, table: str, out: str, column: str, values: Sequence[str]
) -> list[str]:
    """Distinct ``out`` values (as text) of rows whose ``column`` is one of ``values``."""
    if (
        not values
        or not _has(session, schema, table, column)
        or out not in session.columns(schema, table)
    ):
        return []
    found: set[str] = set()
    for chunk in _chunks(values):
        rows = session.fetchall(
            f"SELECT DISTINCT CAST({out} AS TEXT) FROM {schema}.{table} "
            f"WHERE {_in(column, chunk)} AND {out} IS NOT NULL",
            chunk,
        )
        found.update(r[0] for r in rows)
    return sorted(found)


def _delete_orphans(
    session: Session,
    schema: str,
    table: str,
    candidates: Sequence[str],
    link_table: str,
    link_column: str,
) -> int:
    """Delete rows of ``table`` among ``candidates`` that no row of ``link_table`` uses now."""
    if not candidates or not _has(session, schema, table, "id"):
        return 0
    still_used = set(_values_in(session, schema, link_table, link_column, link_column, candidates))
    return _delete_in(session, schema, table, "id", [c for c in candidates if c not in still_used])


def _outcome_contact_column(session: Session, schema: str, configured: str | None) -> str | None:
    """The Salesforce outcome object's contact column: the member's, else the one raw has."""
    if not session.table_exists(schema, SALESFORCE_OUTCOME_TABLE):
        return None
    columns = session.columns(schema, SALESFORCE_OUTCOME_TABLE)
    if configured and configured in columns:
        return configured
    guesses = [c for c in columns if "contact" in c]
    return guesses[0] if len(guesses) == 1 else None


# --- erasing rows ---------------------------------------------------------------------------


def erase_raw(
    session: Session,
    schema: str,
    source_ids: Sequence[str],
    outcome_contact: str | None = None,
) -> Erased:
    """Remove every raw row of ``schema`` that belongs to the people ``source_ids``."""
    erased = Erased()
    ids = sorted(set(source_ids))
    if not ids:
        return erased
    # What exists only for these people: collected before their links go.
    cases = _values_in(session, schema, "civicrm__case_contact", "case_id", "contact_id", ids)
    activities = _values_in(
        session, schema, "civicrm__activity_contact", "activity_id", "contact_id", ids
    )
    engagements = _values_in(
        session, schema, "pmdm__program_engagement", "id", "pmdm__contact__c", ids
    )
    accounts = _values_in(session, schema, "npsp__contact", "account_id", "id", ids)
    for table, column in DIRECT_REFERENCES:
        erased.add(f"{schema}.{table}", _delete_in(session, schema, table, column, ids))
    contact = _outcome_contact_column(session, schema, outcome_contact)
    if contact:
        erased.add(
            f"{schema}.{SALESFORCE_OUTCOME_TABLE}",
            _delete_in(session, schema, SALESFORCE_OUTCOME_TABLE, contact, ids),
        )
    erased.add(
        f"{schema}.pmdm__service_delivery",
        _delete_in(
            session, schema, "pmdm__service_delivery", "pmdm__program_engagement__c", engagements
        ),
    )
    for table, candidates, link, column in (
        ("civicrm__case", cases, "civicrm__case_contact", "case_id"),
        ("civicrm__activity", activities, "civicrm__activity_contact", "activity_id"),
        ("npsp__account", accounts, "npsp__contact", "account_id"),
    ):
        erased.add(
            f"{schema}.{table}", _delete_orphans(session, schema, table, candidates, link, column)
        )
    return erased


def raw_schemas(session: Session, org_id: str) -> list[str]:
    """The member's raw dataset and dlt's staging copy of it, where they exist."""
    names = [f"raw_{org_id}", f"raw_{org_id}_staging"]
    rows = session.fetchall(
        "SELECT schema_name FROM information_schema.schemata WHERE schema_name IN (?, ?)", names
    )
    present = {r[0] for r in rows}
    return [n for n in names if n in present]


def _erase_derived(session: Session, org_id: str, source_id: str) -> Erased:
    """Canonical, quarantine, link and activity rows of one record of one member."""
    erased = Erased()
    for table in CANONICAL_TABLES:
        column = "source_id" if table == "person" else "person_source_id"
        if table == "programme":
            continue
        erased.add(
            f"canonical.{table}",
            _count_delete(
                session,
                f"canonical.{table}",
                f"org_id = ? AND {column} = ?",
                [org_id, source_id],
            ),
        )
    erased.add(
        "quarantine.rejected_rows",
        _count_delete(
            session,
            "quarantine.rejected_rows",
            "org_id = ? AND entity = 'person' AND source_id = ?",
            [org_id, source_id],
        ),
    )
    keys = [
        r[0]
        for r in session.fetchall(
            "SELECT person_key FROM hub.person_link WHERE org_id = ? AND source_id = ?",
            [org_id, source_id],
        )
    ]
    if keys and session.table_exists("hub", "activity"):
        marks = ", ".join("?" for _ in keys)
        erased.periods.update(
            r[0]
            for r in session.fetchall(
                f"SELECT DISTINCT period FROM hub.activity WHERE org_id = ? "
                f"AND person_key IN ({marks})",
                [org_id, *keys],
            )
            if r[0]
        )
    for key in keys:
        for table in ("hub.activity", "hub.published_activity"):
            if session.table_exists(*table.split(".")):
                erased.add(
                    table,
                    _count_delete(session, table, "org_id = ? AND person_key = ?", [org_id, key]),
                )
    erased.add("hub.person_link", _placeholder_links(session, org_id, source_id))
    for table in ("hub.link_review", "hub.link_decision"):
        erased.add(
            table,
            _count_delete(
                session,
                table,
                "(org_id_l = ? AND source_id_l = ?) OR (org_id_r = ? AND source_id_r = ?)",
                [org_id, source_id, org_id, source_id],
            ),
        )
    return erased


def _count_delete(session: Session, table: str, where: str, params: list[str]) -> int:
    count = session.fetchall(f"SELECT COUNT(*) FROM {table} WHERE {where}", params)[0][0]
    if count:
        session.execute(f"DELETE FROM {table} WHERE {where}", params)
    return int(count)


def _placeholder_links(session: Session, org_id: str, source_id: str | None) -> int:
    """Replace the record's (or, with None, the member's) link rows by anonymous ones.

    The next linkage run finds them gone from canonical.person, re-links the people they
    belonged to (what is left may fall apart) and drops them: the same path as a record
    deleted at the source, with no id or fingerprint of the person left meanwhile.
    """
    where = "org_id = ?" + ("" if source_id is None else " AND source_id = ?")
    params = [org_id] if source_id is None else [org_id, source_id]
    rows = session.fetchall(f"SELECT source_id FROM hub.person_link WHERE {where}", params)
    for (old,) in rows:
        session.execute(
            "UPDATE hub.person_link SET source_id = ?, fingerprint = NULL "
            "WHERE org_id = ? AND source_id = ?",
            [f"erased:{uuid.uuid4().hex}", org_id, old],
        )
    return len(rows)


def _log(session: Session, entry: ErasureEntry) -> None:
    session.execute(
        "INSERT INTO hub.erasure_log (erasure_id, action, org_id, subject, requested_by, "
        "erased_at, rows_erased) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            entry.erasure_id,
            entry.action,
            entry.org_id,
            entry.subject,
            entry.requested_by,
            entry.erased_at,
            json.dumps(entry.rows, sort_keys=True),
        ],
    )


def _queue_revisions(session: Session, erasure_id: str, periods: Iterable[str]) -> None:
    """Ask the next release to revise ``periods``: their published figures counted the
    erased records."""
    for period in sorted(set(periods)):
        session.execute(
            "INSERT INTO hub.erasure_revision (erasure_id, period, revised_in) VALUES (?, ?, NULL)",
            [erasure_id, period],
        )


def queued_revisions(session: Session) -> set[str]:
    """Quarters an erasure asked to revise that no release has revised yet."""
    if not session.table_exists("hub", "erasure_revision"):
        return set()
    rows = session.fetchall(
        "SELECT DISTINCT period FROM hub.erasure_revision WHERE revised_in IS NULL"
    )
    return {r[0] for r in rows}


def mark_revised(session: Session, periods: Iterable[str], version: str) -> None:
    """Note that release ``version`` revised ``periods`` for the erasures that asked."""
    for period in sorted(set(periods)):
        session.execute(
            "UPDATE hub.erasure_revision SET revised_in = ? "
            "WHERE period = ? AND revised_in IS NULL",
            [version, period],
        )


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


# --- the three operations -------------------------------------------------------------------


def forget(
    warehouse: Warehouse,
    org_id: str,
    source_id: str,
    requested_by: str,
    outcome_contact: str | None = None,
) -> ErasureEntry:
    """Erase one person of one member from every layer, and remember to keep them erased.

    ``source_id`` is the person's id in the member's own system (the spreadsheet's person
    id, the Salesforce Contact Id, the CiviCRM contact id). Refused, with nothing changed,
    when no layer holds that record: a mistyped id must not be taken for a done erasure.
    """
    _check_org(org_id)
    source_id = source_id.strip()
    if not source_id:
        raise ErasureError("give the person's id in the member's own system")
    with warehouse.connect() as session:
        ensure_schema(session, warehouse.dialect)
        erased = Erased()
        for schema in raw_schemas(session, org_id):
            erased.rows.update(erase_raw(session, schema, [source_id], outcome_contact).rows)
        derived = _erase_derived(session, org_id, source_id)
        erased.rows.update(derived.rows)
        if not erased.total:
            raise ErasureError(
                f"{org_id} has no record {source_id!r} in the hub (raw, canonical or links): "
                "check the id (it is the person's id in the member's own system: the person "
                "id column of a spreadsheet, the Salesforce Contact Id, the CiviCRM contact "
                "id). Nothing was erased or logged."
            )
        entry = ErasureEntry(
            erasure_id=uuid.uuid4().hex[:12],
            action="forget",
            org_id=org_id,
            subject=subject_digest(org_id, source_id),
            requested_by=requested_by,
            erased_at=_now(),
            rows=erased.rows,
            periods=tuple(sorted(derived.periods)),
        )
        _log(session, entry)
        _queue_revisions(session, entry.erasure_id, entry.periods)
    return entry


def forgotten(session: Session, org_id: str) -> set[str]:
    """Digests of the member's people who asked to be forgotten."""
    if not session.table_exists("hub", "erasure_log"):
        return set()
    rows = session.fetchall(
        "SELECT subject FROM hub.erasure_log WHERE org_id = ? AND action = 'forget'", [org_id]
    )
    return {r[0] for r in rows if r[0]}


def apply_erasures(warehouse: Warehouse, org_id: str, outcome_contact: str | None = None) -> Erased:
    """Erase again, from the member's raw data, anyone forgotten whom a load brought back.

    Run after every raw load, before the canonical build reads it: the member's system may
    still hold the record (an erasure in the hub does not reach the member's CRM), so each
    load can bring it back. Costs one pass over the person ids, only for a member with
    erasures on record.
    """
    with warehouse.connect() as session:
        ensure_schema(session, warehouse.dialect)
        digests = forgotten(session, org_id)
        erased = Erased()
        if not digests:
            return erased
        # Person rows, and rows that refer to a forgotten person whose own row did not
        # come back.
        columns = [*PERSON_TABLES, *(r for r in DIRECT_REFERENCES if r not in PERSON_TABLES)]
        for schema in raw_schemas(session, org_id):
            found: set[str] = set()
            for table, column in columns:
                if not _has(session, schema, table, column):
                    continue
                for (value,) in session.fetchall(
                    f"SELECT DISTINCT CAST({column} AS TEXT) FROM {schema}.{table} "
                    f"WHERE {column} IS NOT NULL"
                ):
                    if subject_digest(org_id, value) in digests:
                        found.add(value)
            if found:
                erased.rows.update(erase_raw(session, schema, sorted(found), outcome_contact).rows)
    return erased


@dataclass(frozen=True)
class MemberRemoval:
    """What ``remove_member`` erased, and what it could not reach."""

    entry: ErasureEntry
    dropped_schemas: list[str]
    deleted_folders: list[Path]
    periods: list[str]  # quarters whose published figures counted the member


def remove_member(
    warehouse: Warehouse,
    org_id: str,
    requested_by: str,
    pipelines_dir: Path,
    extra_folders: Sequence[Path] = (),
) -> MemberRemoval:
    """Purge a departing member: raw dataset and staging copy, dlt state and files, canonical
    and quarantine rows, links, review items, decisions and activity rows.

    ``extra_folders`` (its data files and secrets, when the operator asks) are deleted too.
    Published releases are files the funders already have: they are listed, not changed
    (``releases_holding``); the quarters they counted the member in are returned so they can
    be revised.
    """
    import shutil

    _check_org(org_id)
    with warehouse.connect() as session:
        ensure_schema(session, warehouse.dialect)
        erased = Erased()
        periods: list[str] = []
        if session.table_exists("hub", "activity"):
            periods = [
                r[0]
                for r in session.fetchall(
                    "SELECT DISTINCT period FROM hub.activity WHERE org_id = ? ORDER BY period",
                    [org_id],
                )
            ]
        schemas = raw_schemas(session, org_id)
        for schema in schemas:
            tables = session.fetchall(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
                [schema],
            )
            for (table,) in tables:
                erased.add(
                    f"{schema}.{table}",
                    session.fetchall(f'SELECT COUNT(*) FROM {schema}."{table}"')[0][0],
                )
            session.execute(f"DROP SCHEMA {schema} CASCADE")
        for table in [
            *(f"canonical.{t}" for t in CANONICAL_TABLES),
            "quarantine.rejected_rows",
            "hub.label_map",
            "hub.member_status",
            "hub.member",
            "hub.activity",
            "hub.published_activity",
        ]:
            if session.table_exists(*table.split(".")):
                erased.add(table, _count_delete(session, table, "org_id = ?", [org_id]))
        erased.add("hub.person_link", _placeholder_links(session, org_id, None))
        for table in ("hub.link_review", "hub.link_decision"):
            erased.add(
                table, _count_delete(session, table, "org_id_l = ? OR org_id_r = ?", [org_id] * 2)
            )
        entry = ErasureEntry(
            erasure_id=uuid.uuid4().hex[:12],
            action="remove-member",
            org_id=org_id,
            subject=None,
            requested_by=requested_by,
            erased_at=_now(),
            rows=erased.rows,
        )
        _log(session, entry)
        _queue_revisions(session, entry.erasure_id, periods)
    folders = [*member_pipeline_dirs(pipelines_dir, org_id), *extra_folders]
    deleted = []
    for folder in folders:
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder)
            deleted.append(folder)
    return MemberRemoval(entry, schemas, deleted, periods)


def member_pipeline_dirs(pipelines_dir: Path, org_id: str) -> list[Path]:
    """dlt's folders for the member (``hub_<org>_<source>``: state, schemas, packages)."""
    from connectors.civicrm.source import SOURCE_NAME as CIVICRM
    from connectors.salesforce_npsp.source import SOURCE_NAME as SALESFORCE
    from connectors.spreadsheets.source import SOURCE_NAME as SPREADSHEET

    return [
        pipelines_dir / f"hub_{org_id}_{name}"
        for name in (CIVICRM, SALESFORCE, SPREADSHEET)
        if (pipelines_dir / f"hub_{org_id}_{name}").exists()
    ]


def releases_holding(releases_dir: Path, org_id: str) -> list[str]:
    """Published releases whose figures include the member (by their organisation list)."""
    found = []
    if not releases_dir.is_dir():
        return found
    for folder in sorted(releases_dir.iterdir()):
        summary = folder / "organisation_summary.csv"
        if folder.is_symlink() or not summary.is_file():
            continue
        with summary.open(newline="", encoding="utf-8") as handle:
            if any(row.get("org_id") == org_id for row in csv.DictReader(handle)):
                found.append(folder.name)
    return found


def erasure_log(warehouse: Warehouse) -> list[ErasureEntry]:
    """Every erasure, oldest first."""
    with warehouse.connect() as session:
        ensure_schema(session, warehouse.dialect)
        rows = session.fetchall(
            "SELECT erasure_id, action, org_id, subject, requested_by, erased_at, rows_erased "
            "FROM hub.erasure_log ORDER BY erased_at, erasure_id"
        )
    return [
        ErasureEntry(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6] or "{}")) for r in rows
    ]
