"""Whether each member's data is current or held back, and whether anything can be published.

A member whose load or mapping fails keeps its last good canonical rows (they are replaced
only by a successful mapping), so a release still counts them; ``hub.member_status`` records
that they are held back, since when they were good, and why. The stored reason is the
member-facing error, for the hub's operators only; a release publishes a fixed phrase built
from the stage and the date (see ``sql/published/organisation_summary.sql``), never error
text, which may name files, URLs or people.

A member with canonical rows but no status row yet (a warehouse from before this table)
counts as current.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from transforms.canonical import CANONICAL_TABLES, ensure_schema
from transforms.warehouse import Warehouse

CURRENT = "current"
HELD_BACK = "held_back"
STAGES = ("load", "mapping")
MAX_REASON = 500


@dataclass(frozen=True)
class MemberStatus:
    """One member's status. Datetimes are naive UTC, like every hub timestamp."""

    org_id: str
    status: str
    stage: str | None = None
    reason: str | None = None
    last_good_load: datetime | None = None
    failed_at: datetime | None = None

    @property
    def held_back(self) -> bool:
        """Whether the member's latest data could not be taken."""
        return self.status == HELD_BACK


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _short(reason: str) -> str:
    text = " ".join(str(reason).split())
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


_INSERT = "INSERT INTO hub.member_status VALUES (?, ?, ?, ?, ?, ?, ?)"


def mark_current(warehouse: Warehouse, org_id: str, loaded_at: datetime | None = None) -> None:
    """Record that ``org_id``'s data was loaded and mapped successfully at ``loaded_at``."""
    now = _now()
    loaded = _naive_utc(loaded_at) if loaded_at else now
    with warehouse.connect() as session:
        ensure_schema(session, warehouse.dialect)
        session.execute("DELETE FROM hub.member_status WHERE org_id = ?", [org_id])
        session.execute(_INSERT, [org_id, CURRENT, None, None, loaded, None, now])


def mark_held_back(warehouse: Warehouse, org_id: str, stage: str, reason: str) -> None:
    """Record that ``org_id``'s latest ``stage`` (load or mapping) failed with ``reason``.

    The last good load is kept (or taken from ``hub.member`` for a member without a status
    row yet); it stays empty for a member that never loaded.
    """
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}, not {stage!r}")
    now = _now()
    with warehouse.connect() as session:
        ensure_schema(session, warehouse.dialect)
        rows = session.fetchall(
            "SELECT last_good_load FROM hub.member_status WHERE org_id = ?", [org_id]
        )
        if rows:
            last_good = rows[0][0]
        else:
            refreshed = session.fetchall(
                "SELECT last_refreshed FROM hub.member WHERE org_id = ?", [org_id]
            )
            last_good = refreshed[0][0] if refreshed else None
        session.execute("DELETE FROM hub.member_status WHERE org_id = ?", [org_id])
        session.execute(_INSERT, [org_id, HELD_BACK, stage, _short(reason), last_good, now, now])


def clear_load_hold(warehouse: Warehouse, org_id: str) -> bool:
    """A load succeeded with nothing new to bring: a member held back by an earlier *load*
    failure is current again (its canonical data already is the source's data). A mapping
    hold stays until a mapping succeeds. Returns whether a hold was cleared.

    Without this, a file that went missing and came back unchanged would leave the member
    held back under the daemon, where an unchanged load triggers no new mapping.
    """
    with warehouse.connect() as session:
        ensure_schema(session, warehouse.dialect)
        rows = session.fetchall(
            "SELECT last_good_load FROM hub.member_status "
            "WHERE org_id = ? AND status = ? AND stage = 'load'",
            [org_id, HELD_BACK],
        )
        if not rows:
            return False
        session.execute("DELETE FROM hub.member_status WHERE org_id = ?", [org_id])
        session.execute(_INSERT, [org_id, CURRENT, None, None, rows[0][0], None, _now()])
    return True


def member_statuses(warehouse: Warehouse) -> dict[str, MemberStatus]:
    """Every member's status by org_id: recorded ones, and members with data but no record
    (current since their last mapping)."""
    with warehouse.connect() as session:
        ensure_schema(session, warehouse.dialect)
        rows = session.fetchall(
            "SELECT org_id, status, stage, reason, last_good_load, failed_at FROM hub.member_status"
        )
        members = session.fetchall("SELECT org_id, last_refreshed FROM hub.member")
    statuses = {r[0]: MemberStatus(*r) for r in rows}
    for org_id, refreshed in members:
        statuses.setdefault(org_id, MemberStatus(org_id, CURRENT, last_good_load=refreshed))
    return dict(sorted(statuses.items()))


def members_with_data(warehouse: Warehouse) -> list[str]:
    """Members with at least one loaded (not deleted) canonical row: what can be published."""
    with warehouse.connect() as session:
        present = [t for t in CANONICAL_TABLES if session.table_exists("canonical", t)]
        if not present:
            return []
        union = " UNION ".join(
            f"SELECT DISTINCT org_id FROM canonical.{t} WHERE NOT is_deleted" for t in present
        )
        rows = session.fetchall(f"SELECT org_id FROM ({union}) AS loaded ORDER BY org_id")
    return [r[0] for r in rows]


NOTHING_TO_PUBLISH = "nothing to publish: no member has loaded data yet"


def nothing_to_publish(warehouse: Warehouse) -> str | None:
    """Why no release may be written now, or None when some member has data to publish."""
    if members_with_data(warehouse):
        return None
    failed = [s for s in member_statuses(warehouse).values() if s.held_back]
    if not failed:
        return NOTHING_TO_PUBLISH + " (no member's load brought any records)"
    return (
        NOTHING_TO_PUBLISH
        + " (all loads failed: "
        + "; ".join(f"{s.org_id}: its {s.stage} failed: {s.reason}" for s in failed)
        + ")"
    )
