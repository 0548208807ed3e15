"""Link canonical person records into hub people (``hub.person_link``).

Reads ``canonical.person`` from the warehouse (DuckDB or PostgreSQL), normalises the match
fields (``transforms.dedup.normalise``), links them in an in-memory DuckDB with a
deterministic pass and a Splink model (``transforms.dedup.link``), and writes back:

- ``hub.person_link``: every live record -> a pseudonymous person key that survives re-runs
  (``transforms.dedup.cluster.assign_keys``); deleted records leave their person;
- ``hub.person_key_history``: keys created, merged, split or retired by this run;
- ``hub.link_review``: the pairs waiting for a person's decision (``hub review``);
- ``hub.linkage_model``: the model this run used, by version.

Decisions in ``hub.link_decision`` are honoured over the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

from transforms.canonical import ensure_schema
from transforms.dedup.cluster import assign_keys
from transforms.dedup.link import Thresholds, link_records
from transforms.dedup.normalise import normalise_people
from transforms.warehouse import Session, Warehouse

PEOPLE_SQL = """
SELECT org_id, source_id, given_name, family_name, birth_date, email, phone, postcode,
       consent_to_share
FROM canonical.person
WHERE NOT is_deleted
"""


@dataclass(frozen=True)
class LinkResult:
    """Counts for the asset's metadata."""

    records: int
    people: int
    cross_member_people: int
    review_queue: int = 0
    model_version: str = ""
    model_trained: bool = False
    key_changes: int = 0


def _uid(org_id: str, source_id: str) -> str:
    return f"{org_id}|{source_id}"


def link_people(warehouse: Warehouse, thresholds: Thresholds | None = None) -> LinkResult:
    """Rebuild hub.person_link from canonical.person, keeping existing person keys."""
    thresholds = thresholds or Thresholds()
    with warehouse.connect() as session:
        ensure_schema(session, warehouse.dialect)
        people = session.arrow(PEOPLE_SQL)
        previous = {
            _uid(org, sid): key
            for org, sid, key in session.fetchall(
                "SELECT org_id, source_id, person_key FROM hub.person_link"
            )
        }
        decisions = session.fetchall(
            "SELECT org_id_l, source_id_l, org_id_r, source_id_r, decision FROM hub.link_decision"
        )
    # Phones are already E.164 in canonical.person (each member's region applied on load).
    records = normalise_people(people)
    decided = pa.table(
        {
            "unique_id_l": pa.array([_uid(d[0], d[1]) for d in decisions], pa.string()),
            "unique_id_r": pa.array([_uid(d[2], d[3]) for d in decisions], pa.string()),
            "decision": pa.array([d[4] for d in decisions], pa.string()),
        }
    )
    outcome = link_records(records, decisions=decided, thresholds=thresholds)
    ids = outcome.links["unique_id"].to_pylist()
    groups = outcome.links["group"].to_pylist()
    keys, changes = assign_keys(
        groups, [previous.get(u) for u in ids], known_keys=set(previous.values())
    )
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    org_ids, source_ids = zip(*(u.split("|", 1) for u in ids), strict=True) if ids else ((), ())
    link_table = pa.table(
        {
            "org_id": pa.array(org_ids, pa.string()),
            "source_id": pa.array(source_ids, pa.string()),
            "person_key": pa.array(keys, pa.string()),
            "match_probability": outcome.links["probability"].cast(pa.float64()),
            "method": outcome.links["method"],
        }
    )
    review = outcome.review
    left = [u.split("|", 1) for u in review["unique_id_l"].to_pylist()]
    right = [u.split("|", 1) for u in review["unique_id_r"].to_pylist()]
    review_table = pa.table(
        {
            "org_id_l": pa.array([p[0] for p in left], pa.string()),
            "source_id_l": pa.array([p[1] for p in left], pa.string()),
            "org_id_r": pa.array([p[0] for p in right], pa.string()),
            "source_id_r": pa.array([p[1] for p in right], pa.string()),
            "match_probability": review["match_probability"],
            "model_version": pa.array([outcome.model_version] * review.num_rows, pa.string()),
            "queued_at": pa.array([now] * review.num_rows, pa.timestamp("us")),
        }
    )
    with warehouse.connect() as session:
        session.execute("DELETE FROM hub.person_link")
        _append(session, "person_link", link_table)
        session.execute("DELETE FROM hub.link_review")
        _append(session, "link_review", review_table)
        if changes:
            _append(
                session,
                "person_key_history",
                pa.table(
                    {
                        "changed_at": pa.array([now] * len(changes), pa.timestamp("us")),
                        "person_key": [c.person_key for c in changes],
                        "change": [c.change for c in changes],
                        "other_key": pa.array([c.other_key for c in changes], pa.string()),
                        "records": pa.array([c.records for c in changes], pa.int32()),
                        "model_version": [outcome.model_version] * len(changes),
                    }
                ),
            )
        known = session.fetchall(
            "SELECT 1 FROM hub.linkage_model WHERE model_version = ?", [outcome.model_version]
        )
        if not known:
            session.execute(
                "INSERT INTO hub.linkage_model VALUES (?, ?, ?, ?)",
                [
                    outcome.model_version,
                    now,
                    len(ids),
                    json.dumps(outcome.model_json, sort_keys=True, default=str),
                ],
            )
        cross = session.fetchall(
            "SELECT COUNT(*) FROM (SELECT person_key FROM hub.person_link GROUP BY person_key "
            "HAVING COUNT(DISTINCT org_id) > 1) AS shared"
        )[0][0]
    return LinkResult(
        records=len(ids),
        people=len(set(keys)),
        cross_member_people=cross,
        review_queue=review_table.num_rows,
        model_version=outcome.model_version,
        model_trained=outcome.trained,
        key_changes=len(changes),
    )


def _append(session: Session, table: str, data: pa.Table) -> None:
    """Insert an Arrow table into hub.<table> through a staging copy (both warehouses)."""
    if data.num_rows == 0:
        return
    staging = f"{table}_incoming"
    session.replace_table("hub", staging, data)
    columns = ", ".join(data.column_names)
    session.execute(f"INSERT INTO hub.{table} ({columns}) SELECT {columns} FROM hub.{staging}")
    session.execute(f"DROP TABLE hub.{staging}")
