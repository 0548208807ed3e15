"""Link canonical person records into hub people (``hub.person_link``).

Reads ``canonical.person`` from the warehouse (DuckDB or PostgreSQL), normalises the match
fields (``transforms.dedup.normalise``), links them in an in-memory DuckDB with a
deterministic pass and a Splink model (``transforms.dedup.link``), and writes back:

- ``hub.person_link``: every live record -> a pseudonymous person key that survives re-runs
  (``transforms.dedup.cluster.assign_keys``), with a fingerprint of its match fields;
- ``hub.person_key_history``: keys created, merged, split or retired by this run;
- ``hub.link_review``: the pairs waiting for a person's decision (``hub review``);
- ``hub.linkage_model``: the model a full run used, by version;
- ``hub.linkage_run``: what each run did and why (full or incremental).

Decisions in ``hub.link_decision`` are honoured over the model.

Most runs are **incremental**: only records that are new, changed (their fingerprint moved) or
named in a decision made since the last run are scored, against every record, with the saved
model (``find_candidates``); the people they touch (the clusters of the records they may
match, their own previous clusters, and those of deleted records) are re-linked together
(``link_records`` on that neighbourhood, with the whole network's term frequencies); every
other person is left exactly as it was. A **full** run re-estimates the model and re-links
everything: on the first run, when asked, when the network has outgrown its model, or when
too much changed at once for a neighbourhood to be cheaper.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from transforms.canonical import ensure_schema
from transforms.dedup.blocking import BlockingBudget, BlockingWarning
from transforms.dedup.cluster import KeyChange, assign_keys
from transforms.dedup.link import (
    LinkOutcome,
    Thresholds,
    bundled_model,
    find_candidates,
    link_records,
    with_code_blocking_rules,
)
from transforms.dedup.model import TrainedModel
from transforms.dedup.normalise import normalise_people
from transforms.warehouse import Session, Warehouse

PEOPLE_SQL = """
SELECT org_id, source_id, given_name, family_name, birth_date, email, phone, postcode,
       consent_to_share
FROM canonical.person
WHERE NOT is_deleted
"""

# What the linker compares, hashed: a record whose fingerprint is unchanged since the last
# run cannot link differently, so an incremental run leaves it alone.
FINGERPRINT_SQL = """
SELECT unique_id, md5(concat_ws(chr(31),
    org_id, CAST(consent AS VARCHAR), coalesce(given_name, chr(0)),
    coalesce(given_canonical, chr(0)), coalesce(family_name, chr(0)),
    coalesce(CAST(family_tokens AS VARCHAR), chr(0)), coalesce(CAST(birth_date AS VARCHAR), chr(0)),
    coalesce(email, chr(0)), coalesce(phone, chr(0)), coalesce(postcode, chr(0))
)) AS fingerprint
FROM records
"""


@dataclass(frozen=True)
class LinkResult:
    """What a linkage run did, for the asset's metadata and the run log."""

    records: int
    people: int
    cross_member_people: int
    review_queue: int = 0
    model_version: str = ""
    model_trained: bool = False
    model: str = ""  # where the model came from, in words
    key_changes: int = 0
    mode: str = "full"  # full | incremental | unchanged
    reason: str = ""  # why a full run was needed, or what the incremental run re-linked
    changed_records: int = 0  # new or changed since the last run (or in a new decision)
    deleted_records: int = 0  # linked last run, gone (deleted at source) now
    relinked_records: int = 0  # records whose person was worked out again
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step
    # Blocking rules whose candidate pairs were over the budget, and what was done (rule,
    # blocks and pairs dropped, largest block's size; never a value of the data).
    blocking_warnings: tuple[BlockingWarning, ...] = ()


class _Laps:
    """Seconds spent per step of a run (read, normalise, candidates, relink, write)."""

    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(self.laps.get(name, 0.0) + now - self.last, 2)
        self.last = now


@dataclass(frozen=True)
class _State:
    """The warehouse as the last run left it."""

    previous: pa.Table  # unique_id, person_key, fingerprint
    decisions: pa.Table  # unique_id_l, unique_id_r, decision
    new_decision_ids: list[str]  # records named in decisions made since the last run
    model_version: str | None
    model_json: dict[str, Any] | None
    model_records: int


def _uid(org_id: str, source_id: str) -> str:
    return f"{org_id}|{source_id}"


def link_people(
    warehouse: Warehouse,
    thresholds: Thresholds | None = None,
    *,
    full: bool = False,
    budget: BlockingBudget | None = None,
) -> LinkResult:
    """Bring hub.person_link up to date with canonical.person, keeping person keys.

    ``full=True`` re-estimates the model and re-links every record; otherwise only what
    changed is re-linked, unless a full run is due (see the module docstring). ``budget``
    caps the candidate pairs of each blocking rule (default: ``HUB_LINK_MAX_BLOCK_PAIRS``
    and ``HUB_LINK_MAX_RULE_PAIRS``); rules over it are tightened or skipped and listed in
    the result's ``blocking_warnings``.
    """
    budget = budget or BlockingBudget.from_env()
    clock = _Laps()
    # A run is dated by when it read the warehouse: a decision recorded while it ran is
    # newer than the run, so the next run picks it up.
    run_at = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    thresholds = thresholds or Thresholds()
    with warehouse.connect() as session:
        ensure_schema(session, warehouse.dialect)
        people = session.arrow(PEOPLE_SQL)
        state = _read_state(session)
    clock.lap("read")
    # Phones are already E.164 in canonical.person (each member's region applied on load).
    records = normalise_people(people)
    del people
    with duckdb.connect() as con:
        con.register("records", records)
        prints = con.sql(FINGERPRINT_SQL).to_arrow_table()
        con.register("prints", prints)
        con.register("previous", state.previous)
        changed = con.sql(
            """
            SELECT c.unique_id FROM prints AS c LEFT JOIN previous AS p USING (unique_id)
            WHERE p.fingerprint IS DISTINCT FROM c.fingerprint
            ORDER BY c.unique_id
            """
        ).to_arrow_table()["unique_id"]
        deleted = con.sql(
            "SELECT p.unique_id, p.person_key FROM previous AS p ANTI JOIN prints USING "
            "(unique_id) ORDER BY p.unique_id"
        ).to_arrow_table()
    current_ids = set(records["unique_id"].to_pylist())
    seeds = sorted(
        set(changed.to_pylist()) | {u for u in state.new_decision_ids if u in current_ids}
    )
    clock.lap("normalise")
    reason = _full_run_reason(records.num_rows, len(seeds), state, thresholds, full)
    if reason:
        outcome, changes, link_table, relinked = _link_all(
            records, prints, state, thresholds, budget
        )
        replaced = None
        clock.lap("link")
    elif not seeds and deleted.num_rows == 0:
        return _record_unchanged(warehouse, records.num_rows, state, clock, run_at)
    else:
        outcome, changes, link_table, relinked, replaced = _link_changes(
            records, prints, state, seeds, deleted, thresholds, clock, budget
        )
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    review_table = _review_table(outcome, now)
    mode = "full" if reason else "incremental"
    summary = reason or (
        f"{len(seeds)} new or changed record(s) and {deleted.num_rows} deleted; "
        f"{relinked} record(s) in the people they touch re-linked"
    )
    with warehouse.connect() as session:
        if replaced is None:
            session.execute("DELETE FROM hub.person_link")
            session.execute("DELETE FROM hub.link_review")
        else:
            _delete_records(session, replaced)
        _append(session, "person_link", link_table)
        _append(session, "link_review", review_table)
        _append(session, "person_key_history", _history_table(changes, now, outcome))
        if mode == "full":
            # The newest full run's model is the one incremental runs reuse (re-inserted when
            # an identical model was saved before, so it counts as the newest).
            session.execute(
                "DELETE FROM hub.linkage_model WHERE model_version = ?", [outcome.model_version]
            )
            session.execute(
                "INSERT INTO hub.linkage_model VALUES (?, ?, ?, ?)",
                [
                    outcome.model_version,
                    now,
                    records.num_rows,
                    json.dumps(outcome.model_json, sort_keys=True, default=str),
                ],
            )
        result = _counts(
            session,
            LinkResult(
                records=records.num_rows,
                people=0,
                cross_member_people=0,
                model_version=outcome.model_version,
                model_trained=outcome.trained,
                model=_model_origin(outcome.model_version, outcome.trained, state),
                key_changes=len(changes),
                mode=mode,
                reason=summary,
                changed_records=len(seeds),
                deleted_records=deleted.num_rows,
                relinked_records=relinked,
                blocking_warnings=outcome.blocking_warnings,
            ),
        )
        clock.lap("write")
        result = LinkResult(
            **{
                **result.__dict__,
                "seconds": round(time.perf_counter() - clock.started, 2),
                "timings": clock.laps,
            }
        )
        _log_run(session, run_at, result)
    return result


def _read_state(session: Session) -> _State:
    previous = session.arrow(
        "SELECT org_id, source_id, person_key, fingerprint FROM hub.person_link"
    )
    decisions = session.fetchall(
        "SELECT org_id_l, source_id_l, org_id_r, source_id_r, decision, decided_at "
        "FROM hub.link_decision"
    )
    last_run = session.fetchall("SELECT MAX(run_at) FROM hub.linkage_run")[0][0]
    model = session.fetchall(
        "SELECT model_version, records, model_json FROM hub.linkage_model "
        "ORDER BY trained_at DESC LIMIT 1"
    )
    new_ids = [
        uid
        for d in decisions
        if last_run is None or d[5] >= last_run
        for uid in (_uid(d[0], d[1]), _uid(d[2], d[3]))
    ]
    ids = [
        _uid(o, s)
        for o, s in zip(
            previous["org_id"].to_pylist(), previous["source_id"].to_pylist(), strict=True
        )
    ]
    return _State(
        previous=pa.table(
            {
                "unique_id": pa.array(ids, pa.string()),
                "person_key": previous["person_key"].cast(pa.string()),
                "fingerprint": previous["fingerprint"].cast(pa.string()),
            }
        ),
        decisions=pa.table(
            {
                "unique_id_l": pa.array([_uid(d[0], d[1]) for d in decisions], pa.string()),
                "unique_id_r": pa.array([_uid(d[2], d[3]) for d in decisions], pa.string()),
                "decision": pa.array([d[4] for d in decisions], pa.string()),
            }
        ),
        new_decision_ids=new_ids,
        model_version=model[0][0] if model else None,
        model_json=json.loads(model[0][2]) if model else None,
        model_records=model[0][1] if model else 0,
    )


def _bundled_version() -> str:
    return TrainedModel(with_code_blocking_rules(bundled_model())).version


def _model_origin(version: str, trained: bool, state: _State) -> str:
    if trained:
        return "estimated from this run's records"
    if version == _bundled_version():
        return "bundled (estimated on synthetic data: too few records to estimate one)"
    return f"estimated by an earlier full run, from {state.model_records:,} records"


def _full_run_reason(
    records: int, changed: int, state: _State, thresholds: Thresholds, full: bool
) -> str:
    """Why this run must re-link everything, or "" when an incremental run will do."""
    if full:
        return "a full re-link was asked for"
    if state.previous.num_rows == 0:
        return "first linkage run"
    if state.model_json is None:
        return "no saved model to score changes with"
    bundled = state.model_version == _bundled_version()
    if bundled and records >= thresholds.min_records_to_train:
        return (
            f"{records:,} records are enough to estimate the network's own model "
            f"(at least {thresholds.min_records_to_train:,}); the saved one is the bundled model"
        )
    if not bundled and records > state.model_records * (1 + thresholds.retrain_growth):
        return (
            f"the network grew from {state.model_records:,} to {records:,} records since its "
            f"model was estimated (more than {thresholds.retrain_growth:.0%})"
        )
    if changed > records * thresholds.max_incremental_share:
        return (
            f"{changed:,} of {records:,} records changed (more than "
            f"{thresholds.max_incremental_share:.0%}): re-linking all is as cheap"
        )
    return ""


def _link_all(
    records: pa.Table,
    prints: pa.Table,
    state: _State,
    thresholds: Thresholds,
    budget: BlockingBudget,
) -> tuple[LinkOutcome, list[KeyChange], pa.Table, int]:
    """Link every record (re-estimating the model when there are enough records)."""
    outcome = link_records(records, decisions=state.decisions, thresholds=thresholds, budget=budget)
    keys, changes = _keys(outcome, state, known_keys=set(state.previous["person_key"].to_pylist()))
    return outcome, changes, _link_table(outcome, keys, prints), outcome.links.num_rows


def _keys(
    outcome: LinkOutcome, state: _State, known_keys: set[str]
) -> tuple[list[str], list[KeyChange]]:
    """Person keys for the linked records, keeping those they had (``assign_keys``)."""
    previous = dict(
        zip(
            state.previous["unique_id"].to_pylist(),
            state.previous["person_key"].to_pylist(),
            strict=True,
        )
    )
    return assign_keys(
        outcome.links["group"].to_pylist(),
        [previous.get(u) for u in outcome.links["unique_id"].to_pylist()],
        known_keys=known_keys,
    )


def _link_changes(
    records: pa.Table,
    prints: pa.Table,
    state: _State,
    seeds: list[str],
    deleted: pa.Table,
    thresholds: Thresholds,
    clock: _Laps,
    budget: BlockingBudget,
) -> tuple[LinkOutcome, list[KeyChange], pa.Table, int, pa.Array]:
    """Re-link only the people that new, changed and deleted records touch."""
    assert state.model_json is not None
    candidates = (
        find_candidates(
            records,
            pa.array(seeds, pa.string()),
            model_json=state.model_json,
            thresholds=thresholds,
            budget=budget,
        )
        if seeds
        else None
    )
    with duckdb.connect() as con:
        con.register("previous", state.previous)
        con.register("records", records)
        con.register("seeds", pa.table({"unique_id": pa.array(seeds, pa.string())}))
        con.register(
            "matched",
            pa.table(
                {"unique_id": candidates.matched if candidates else pa.array([], pa.string())}
            ),
        )
        con.register("deleted", deleted)
        # People touched: the previous person of every seed, of every record a seed may
        # match, and of every deleted record (what is left of it may fall apart).
        con.execute(
            """
            CREATE TABLE touched AS
            SELECT DISTINCT person_key FROM previous
            SEMI JOIN (SELECT unique_id FROM seeds UNION ALL SELECT unique_id FROM matched)
                AS s USING (unique_id)
            UNION SELECT person_key FROM deleted
            """
        )
        neighbourhood = con.sql(
            """
            SELECT r.* FROM records AS r
            WHERE r.unique_id IN (SELECT unique_id FROM seeds)
               OR r.unique_id IN (
                    SELECT unique_id FROM previous SEMI JOIN touched USING (person_key))
            ORDER BY r.unique_id
            """
        ).to_arrow_table()
        touched = con.sql("SELECT person_key FROM touched").to_arrow_table()["person_key"]
    clock.lap("candidates")
    outcome = link_records(
        neighbourhood,
        decisions=state.decisions,
        model_json=state.model_json,
        thresholds=thresholds,
        term_frequencies=candidates.term_frequencies if candidates else None,
        # The network's plan: a block too large in the network is tightened here alike.
        blocking_plan=candidates.plan if candidates else None,
        budget=budget,
    )
    outcome.stats["candidate_pairs"] = candidates.scored_pairs if candidates else 0
    keys, changes = _keys(outcome, state, known_keys=set(touched.to_pylist()))
    clock.lap("relink")
    replaced = pa.concat_arrays(
        [outcome.links["unique_id"].combine_chunks(), deleted["unique_id"].combine_chunks()]
    )
    return outcome, changes, _link_table(outcome, keys, prints), outcome.links.num_rows, replaced


def _link_table(outcome: LinkOutcome, keys: list[str], prints: pa.Table) -> pa.Table:
    """hub.person_link rows for the linked records."""
    with duckdb.connect() as con:
        con.register("links", outcome.links)
        con.register("prints", prints)
        con.register(
            "keyed",
            pa.table(
                {"unique_id": outcome.links["unique_id"], "person_key": pa.array(keys, pa.string())}
            ),
        )
        return con.sql(
            """
            SELECT split_part(l.unique_id, '|', 1) AS org_id,
                   substr(l.unique_id, strpos(l.unique_id, '|') + 1) AS source_id,
                   k.person_key,
                   CAST(l.probability AS DOUBLE) AS match_probability,
                   l.method,
                   p.fingerprint
            FROM links AS l
            JOIN keyed AS k USING (unique_id)
            JOIN prints AS p USING (unique_id)
            ORDER BY l.unique_id
            """
        ).to_arrow_table()


def _review_table(outcome: LinkOutcome, now: datetime) -> pa.Table:
    review = outcome.review
    left = [u.split("|", 1) for u in review["unique_id_l"].to_pylist()]
    right = [u.split("|", 1) for u in review["unique_id_r"].to_pylist()]
    return pa.table(
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


def _history_table(changes: list[KeyChange], now: datetime, outcome: LinkOutcome) -> pa.Table:
    return pa.table(
        {
            "changed_at": pa.array([now] * len(changes), pa.timestamp("us")),
            "person_key": pa.array([c.person_key for c in changes], pa.string()),
            "change": pa.array([c.change for c in changes], pa.string()),
            "other_key": pa.array([c.other_key for c in changes], pa.string()),
            "records": pa.array([c.records for c in changes], pa.int32()),
            "model_version": pa.array([outcome.model_version] * len(changes), pa.string()),
        }
    )


def _delete_records(session: Session, unique_ids: pa.Array) -> None:
    """Remove these records' links and every queued pair that involves one of them."""
    if len(unique_ids) == 0:
        return
    split = [u.split("|", 1) for u in unique_ids.to_pylist()]
    session.replace_table(
        "hub",
        "relinked_incoming",
        pa.table(
            {
                "org_id": pa.array([s[0] for s in split], pa.string()),
                "source_id": pa.array([s[1] for s in split], pa.string()),
            }
        ),
    )
    gone = "SELECT org_id, source_id FROM hub.relinked_incoming"
    session.execute(f"DELETE FROM hub.person_link WHERE (org_id, source_id) IN ({gone})")
    session.execute(
        f"DELETE FROM hub.link_review WHERE (org_id_l, source_id_l) IN ({gone}) "
        f"OR (org_id_r, source_id_r) IN ({gone})"
    )
    session.execute("DROP TABLE hub.relinked_incoming")


def _counts(session: Session, result: LinkResult) -> LinkResult:
    """The result with people, cross-member people and queue size as now in the warehouse."""
    people, cross = session.fetchall(
        """
        SELECT COUNT(*), COALESCE(SUM(CASE WHEN orgs > 1 THEN 1 ELSE 0 END), 0)
        FROM (SELECT person_key, COUNT(DISTINCT org_id) AS orgs FROM hub.person_link
              GROUP BY person_key) AS people
        """
    )[0]
    queue = session.fetchall("SELECT COUNT(*) FROM hub.link_review")[0][0]
    return LinkResult(
        **{
            **result.__dict__,
            "people": int(people),
            "cross_member_people": int(cross),
            "review_queue": int(queue),
        }
    )


def _record_unchanged(
    warehouse: Warehouse, records: int, state: _State, clock: _Laps, run_at: datetime
) -> LinkResult:
    with warehouse.connect() as session:
        result = _counts(
            session,
            LinkResult(
                records=records,
                people=0,
                cross_member_people=0,
                model_version=state.model_version or "",
                model=_model_origin(state.model_version or "", False, state),
                mode="unchanged",
                reason="no person record changed since the last run",
                seconds=round(time.perf_counter() - clock.started, 2),
                timings=clock.laps,
            ),
        )
        _log_run(session, run_at, result)
    return result


def _log_run(session: Session, run_at: datetime, result: LinkResult) -> None:
    session.execute(
        "INSERT INTO hub.linkage_run (run_at, mode, reason, model_version, records, "
        "changed_records, deleted_records, relinked_records, people, seconds) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            run_at,
            result.mode,
            result.reason,
            result.model_version,
            result.records,
            result.changed_records,
            result.deleted_records,
            result.relinked_records,
            result.people,
            result.seconds,
        ],
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
