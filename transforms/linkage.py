"""Link canonical person records into hub people (``hub.person_link``).

This is the deterministic pass: exact matches on normalised name and birth date, consent
respected, keys kept stable across runs (see ``sql/hub/person_link.sql``). The probabilistic
Splink pass and the review queue build on it (issue #5).
"""

from __future__ import annotations

from dataclasses import dataclass

from transforms import sql
from transforms.canonical import ensure_schema
from transforms.warehouse import Warehouse


@dataclass(frozen=True)
class LinkResult:
    """Counts for the asset's metadata."""

    records: int
    people: int
    cross_member_people: int


def link_people(warehouse: Warehouse) -> LinkResult:
    """Rebuild hub.person_link from canonical.person, keeping existing person keys."""
    statement = sql.render("hub/person_link", dialect=warehouse.dialect)
    with warehouse.connect() as session:
        ensure_schema(session, warehouse.dialect)
        session.execute("DROP TABLE IF EXISTS hub.person_link_next")
        session.execute(f"CREATE TABLE hub.person_link_next AS {statement}")
        session.execute("DELETE FROM hub.person_link")
        session.execute("INSERT INTO hub.person_link SELECT * FROM hub.person_link_next")
        session.execute("DROP TABLE hub.person_link_next")
        records, people = session.fetchall(
            "SELECT COUNT(*), COUNT(DISTINCT person_key) FROM hub.person_link"
        )[0]
        cross = session.fetchall(
            "SELECT COUNT(*) FROM (SELECT person_key FROM hub.person_link GROUP BY person_key "
            "HAVING COUNT(DISTINCT org_id) > 1) AS shared"
        )[0][0]
    return LinkResult(records=records, people=people, cross_member_people=cross)
