"""Link normalised person records into people: the two passes, guards, review and clustering.

The warehouse-independent core of ``hub.person_link`` (``transforms.linkage`` reads and
writes the warehouse). Works in an in-memory DuckDB over Arrow tables:

1. **Deterministic pass**: same given name, family name and birth date (all present) is the
   same person, within a member or, when both consent, across members.
2. **Probabilistic pass**: Splink scores the pairs its blocking rules find (see ``model``).
3. **Guards** turn a scored pair into a *cannot-link* pair whatever its score, for the hard
   cases a model over-merges: both birth dates known and plainly different (not a typo, not a
   day/month swap: parent and child with one name at one address), or given names that are
   plainly different and not a nickname of one another (twins; a household sharing an e-mail,
   a landline and an address, where one record has no birth date).
4. **Decisions** a reviewer recorded win over the model and the guards.
5. Pairs above ``accept`` link; pairs between ``review`` and ``accept`` go to the review queue.
6. ``cluster.cluster`` joins links strongest first under the cannot-link and consent rules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import duckdb
import pyarrow as pa

from transforms.dedup import model as link_model
from transforms.dedup.blocking import (
    BlockingBudget,
    BlockingPlan,
    BlockingWarning,
    Rule,
    plan_blocking,
)
from transforms.dedup.cluster import Clusters, Link, cluster


@dataclass(frozen=True)
class Thresholds:
    """Match probabilities that decide what happens to a scored pair."""

    accept: float = 0.95  # at or above: linked without asking
    review: float = 0.5  # at or above (and below accept): queued for a person
    score_floor: float = 0.01  # pairs scored lower are not even kept
    min_records_to_train: int = 5000  # fewer: use the bundled model, estimated on synthetic data
    retrain_growth: float = 0.25  # re-estimate (a full run) once the network grew this much
    max_incremental_share: float = 0.2  # more records changed than this: a full run


@dataclass
class LinkOutcome:
    """Everything a linkage run produced, as Arrow tables and counts."""

    links: pa.Table  # unique_id, group (index of the representative record), probability, method
    review: pa.Table  # unique_id_l, unique_id_r, match_probability
    model_json: dict[str, Any]
    model_version: str
    trained: bool
    clusters: Clusters
    stats: dict[str, int] = field(default_factory=dict)
    # Rules over the candidate-pair budget, tightened or skipped (``blocking``), and
    # training rules whose pairs were sampled down.
    blocking_warnings: tuple[BlockingWarning, ...] = ()


DEFAULT_MODEL = "default_model.json"


def bundled_model() -> dict[str, Any]:
    """The model shipped with the hub, for networks too small to estimate their own."""
    text = resources.files("transforms.dedup").joinpath(DEFAULT_MODEL).read_text("utf-8")
    return json.loads(text)


def _pairs_sql(predictions: str, records: str, decisions: str) -> str:
    """Scored pairs with their guard verdict and any reviewer decision, as record indexes."""
    return f"""
    WITH scored AS (
        SELECT unique_id_l, unique_id_r, match_probability FROM {predictions}
    )
    SELECT
        l.idx AS left_idx,
        r.idx AS right_idx,
        s.match_probability,
        CASE
            WHEN l.birth_date IS NOT NULL AND r.birth_date IS NOT NULL
                AND l.birth_date <> r.birth_date
                AND l.birth_date IS DISTINCT FROM r.birth_date_swapped
                AND damerau_levenshtein(CAST(l.birth_date AS VARCHAR),
                                        CAST(r.birth_date AS VARCHAR)) > 1
                THEN 'birth_dates_differ'
            WHEN l.given_name IS NOT NULL AND r.given_name IS NOT NULL
                AND l.given_canonical IS DISTINCT FROM r.given_canonical
                AND jaro_winkler_similarity(l.given_name, r.given_name) < 0.8
                THEN 'given_names_differ'
        END AS guard,
        d.decision
    FROM scored AS s
    JOIN {records} AS l ON l.unique_id = s.unique_id_l
    JOIN {records} AS r ON r.unique_id = s.unique_id_r
    LEFT JOIN {decisions} AS d
        ON (d.unique_id_l = s.unique_id_l AND d.unique_id_r = s.unique_id_r)
        OR (d.unique_id_l = s.unique_id_r AND d.unique_id_r = s.unique_id_l)
    """


# The deterministic rule, one place for full and incremental runs: same given name, family
# name and birth date (all present), consent honoured as in every blocking rule.
DETERMINISTIC_MATCH = (
    "l.given_name = r.given_name AND l.family_name = r.family_name "
    f"AND l.birth_date = r.birth_date AND {link_model.CONSENT_RULE}"
)

DETERMINISTIC_COLUMNS = ("given_name", "family_name", "birth_date")

DETERMINISTIC_SQL = """
SELECT l.idx AS left_idx, r.idx AS right_idx
FROM {records} AS l
JOIN {records} AS r ON {match} AND l.idx < r.idx
"""


def blocking_rules() -> list[Rule]:
    """Every rule that forms pairs, in order: the deterministic one, then Splink's.

    The deterministic rule is budgeted like the others (a placeholder name and birth date
    typed into thousands of records would pair them all) but never split further: it
    means exactly "same given name, family name and birth date".
    """
    return [
        Rule(DETERMINISTIC_COLUMNS, DETERMINISTIC_MATCH, refine=False),
        *(Rule(k, link_model.blocking_rule(k)) for k in link_model.BLOCKING_KEYS),
    ]


def plan_rules(
    con: duckdb.DuckDBPyConnection, table: str, budget: BlockingBudget | None
) -> BlockingPlan:
    """Count the pairs of every rule in ``table`` and tighten those over the budget
    (``HUB_LINK_MAX_*`` from the environment when no budget is given)."""
    return plan_blocking(con, table, blocking_rules(), budget or BlockingBudget.from_env())


def _deterministic_sql(plan: BlockingPlan) -> str | None:
    return plan.rules[0].sql


def _with_plan(model_json: dict[str, Any], plan: BlockingPlan) -> dict[str, Any]:
    """The model with the plan's Splink rules (tightened, skipped ones left out).

    For the linker only: the saved model and its version keep the code's rules.
    """
    model_json = dict(model_json)
    model_json["blocking_rules_to_generate_predictions"] = [
        {"blocking_rule": sql, "sql_dialect": "duckdb"} for sql in _splink_sql(plan)
    ]
    return model_json


def _splink_sql(plan: BlockingPlan) -> list[str]:
    """The Splink rules to run. Empty when all were skipped: then nothing is predicted,
    since Splink given no rule at all would compare every record with every other."""
    return [p.sql for p in plan.rules[1:] if p.sql is not None]


def with_code_blocking_rules(model_json: dict[str, Any]) -> dict[str, Any]:
    """The model with the code's blocking rules, whatever it was saved with: consent holds."""
    model_json = dict(model_json)
    model_json["blocking_rules_to_generate_predictions"] = [
        {"blocking_rule": link_model.blocking_rule(k), "sql_dialect": "duckdb"}
        for k in link_model.BLOCKING_KEYS
    ]
    return model_json


def _empty_decisions() -> pa.Table:
    return pa.table(
        {
            "unique_id_l": pa.array([], pa.string()),
            "unique_id_r": pa.array([], pa.string()),
            "decision": pa.array([], pa.string()),
        }
    )


def _require_ids(records: pa.Table) -> None:
    if records["unique_id"].null_count:
        # Every record must come out with a person; one without an id cannot be written back.
        raise ValueError(
            f"{records['unique_id'].null_count} person record(s) have no org_id or source_id; "
            "canonical.person requires both, so the canonical build is at fault"
        )


def link_records(
    records: pa.Table,
    *,
    decisions: pa.Table | None = None,
    model_json: dict[str, Any] | None = None,
    thresholds: Thresholds | None = None,
    seed: int = 2026,
    term_frequencies: dict[str, pa.Table] | None = None,
    budget: BlockingBudget | None = None,
    blocking_plan: BlockingPlan | None = None,
) -> LinkOutcome:
    """Cluster normalised records (``normalise_people`` output) into people.

    ``decisions`` holds (unique_id_l, unique_id_r, decision) with decision accept|reject.
    ``model_json`` reuses a trained model; without it the model is trained on ``records``
    when there are enough of them, else the bundled model is used. ``term_frequencies``
    (column -> Arrow table of value, tf_<column>) replaces the frequencies Splink would count
    in ``records``: incremental linking passes those of the whole network, so a name that is
    common in the hub counts as common in a small neighbourhood of it too.

    Before anything is scored, every blocking rule's candidate pairs are counted and the
    rules over ``budget`` tightened or skipped (``transforms.dedup.blocking``; the budget
    from the environment by default); ``blocking_plan`` applies a plan made on a larger
    table instead (incremental linking: the network's), so the same blocks are tightened.
    """
    thresholds = thresholds or Thresholds()
    _require_ids(records)
    con = duckdb.connect()
    con.register("records_in", records)
    con.execute("CREATE TABLE records AS SELECT row_number() OVER () - 1 AS idx, * FROM records_in")
    con.unregister("records_in")
    plan = blocking_plan or plan_rules(con, "records", budget)
    plan.add_keys(con, "records")
    con.register("decisions", decisions if decisions is not None else _empty_decisions())
    n = records.num_rows
    stats: dict[str, int] = {"records": n}

    trained = False
    training_warnings: tuple[BlockingWarning, ...] = ()
    if model_json is None and n >= thresholds.min_records_to_train:
        model = link_model.train(records, seed=seed, budget=budget)
        model_json, training_warnings = model.json, model.warnings
        trained = True
    elif model_json is None:
        model_json = bundled_model()
    model_json = with_code_blocking_rules(model_json)
    version = link_model.TrainedModel(model_json).version

    deterministic_match = _deterministic_sql(plan)
    deterministic = (
        con.execute(
            DETERMINISTIC_SQL.format(records="records", match=deterministic_match)
        ).fetchall()
        if deterministic_match
        else []
    )
    links = [Link(a, b, 1.0, "deterministic") for a, b in deterministic]
    stats["deterministic_links"] = len(links)

    cannot: list[tuple[int, int]] = []
    review: list[tuple[int, int, float]] = []
    if n > 1 and _splink_sql(plan):
        db_api = link_model.db_api_for(con)
        # A tightened plan blocks on derived key columns of the ``records`` table; a plan
        # within budget runs exactly as before, on the records as given.
        linker = (
            link_model.linker_for("records", _with_plan(model_json, plan), db_api)
            if plan.changed
            else link_model.linker_for(records, model_json, db_api)
        )
        for column, table in (term_frequencies or {}).items():
            linker.table_management.register_term_frequency_lookup(db_api.register(table), column)
        predictions = linker.inference.predict(
            threshold_match_probability=thresholds.score_floor, warning_mode="never"
        )
        pairs = _pairs_sql(predictions.physical_name, "records", "decisions")
        stats["scored_pairs"] = con.execute(
            f"SELECT COUNT(*) FROM {predictions.physical_name}"
        ).fetchall()[0][0]
        # Only the pairs that change something come to Python (a million-person network
        # scores about a million pairs; most are below the review threshold, unguarded).
        for left, right, probability, guard in con.execute(
            f"""
            SELECT left_idx, right_idx, match_probability, guard FROM ({pairs})
            WHERE decision IS NULL AND (guard IS NOT NULL OR match_probability >= ?)
            """,
            [thresholds.review],
        ).fetchall():
            if guard is not None:
                cannot.append((left, right))
            elif probability >= thresholds.accept:
                links.append(Link(left, right, float(probability), "probabilistic"))
            else:
                review.append((left, right, float(probability)))
    # Reviewers' decisions, on scored pairs and on pairs the model never scored alike.
    for left, right, decision in con.execute(
        """
        SELECT l.idx, r.idx, d.decision FROM decisions AS d
        JOIN records AS l ON l.unique_id = d.unique_id_l
        JOIN records AS r ON r.unique_id = d.unique_id_r
        """
    ).fetchall():
        if decision == "accept":
            links.append(Link(left, right, 1.0, "manual"))
        else:
            cannot.append((left, right))
    stats["cannot_link_pairs"] = len(cannot)

    meta = con.execute("SELECT org_id, consent FROM records ORDER BY idx").fetchall()
    clusters = cluster([m[0] for m in meta], [bool(m[1]) for m in meta], links, cannot)
    del meta
    stats["links_refused_for_consent"] = sum(1 for _, why in clusters.refused if why == "consent")
    stats["links_refused_for_guards"] = sum(1 for _, why in clusters.refused if why != "consent")
    # A pair already joined through other links needs no review.
    pending = [(a, b, p) for a, b, p in review if clusters.group[a] != clusters.group[b]]
    # Record indexes are positions in the ``records`` table (idx), not in the Arrow input.
    ids = con.sql("SELECT unique_id FROM records ORDER BY idx").to_arrow_table()["unique_id"]
    ids = ids.combine_chunks()
    con.close()
    return LinkOutcome(
        links=pa.table(
            {
                "unique_id": ids,
                "group": pa.array(clusters.group, pa.int64()),
                "probability": pa.array(clusters.probability, pa.float64()),
                "method": pa.array(clusters.method, pa.string()),
            }
        ),
        review=pa.table(
            {
                "unique_id_l": ids.take(pa.array([p[0] for p in pending], pa.int64())),
                "unique_id_r": ids.take(pa.array([p[1] for p in pending], pa.int64())),
                "match_probability": pa.array([p[2] for p in pending], pa.float64()),
            }
        ),
        model_json=model_json,
        model_version=version,
        trained=trained,
        clusters=clusters,
        stats=stats,
        blocking_warnings=(*training_warnings, *plan.warnings),
    )


@dataclass
class Candidates:
    """What changed records touch: the records they may be the same person as."""

    matched: pa.Array  # unique_ids of other records scoring >= review with a changed one
    term_frequencies: dict[str, pa.Table]  # of the whole network, for re-linking a part
    scored_pairs: int
    plan: BlockingPlan  # the network's blocking plan, for re-linking a part alike


def find_candidates(
    records: pa.Table,
    changed: pa.Array,
    *,
    model_json: dict[str, Any],
    thresholds: Thresholds | None = None,
    budget: BlockingBudget | None = None,
) -> Candidates:
    """Score the ``changed`` records (unique_ids) against every record, with a saved model.

    The first half of incremental linking: Splink's ``predict_between`` (changed x the
    rest) and ``predict_within`` (changed x changed) use the same blocking rules and
    term frequencies as a full run, so a pair scores here exactly as it would there, but only
    pairs with a changed record are formed. The deterministic rule is applied alike, and so
    is the candidate-pair budget: counted over the whole network, as a full run counts it.
    """
    thresholds = thresholds or Thresholds()
    _require_ids(records)
    model_json = with_code_blocking_rules(model_json)
    con = duckdb.connect()
    con.register("records_arrow", records)
    plan = plan_rules(con, "records_arrow", budget)
    if plan.changed:
        plan.add_keys(con, "records_arrow", "records_in")
    else:
        con.register("records_in", records)
    con.register("changed_in", pa.table({"unique_id": pa.array(changed, pa.string())}))
    con.execute("CREATE TABLE changed_ids AS SELECT DISTINCT unique_id FROM changed_in")
    con.execute(
        "CREATE TABLE changed AS SELECT r.* FROM records_in AS r SEMI JOIN changed_ids USING "
        "(unique_id)"
    )
    con.execute(
        "CREATE TABLE unchanged AS SELECT r.* FROM records_in AS r ANTI JOIN changed_ids USING "
        "(unique_id)"
    )
    db_api = link_model.db_api_for(con)
    linker = (
        link_model.linker_for("records_in", _with_plan(model_json, plan), db_api)
        if plan.changed
        else link_model.linker_for(records, model_json, db_api)
    )
    term_frequencies = {
        column: linker.table_management.compute_tf_table(column).as_pyarrow_table()
        for column in link_model.term_frequency_columns(model_json)
    }
    parts = []
    scored = 0
    if _splink_sql(plan):
        left, right = db_api.register("changed"), db_api.register("unchanged")
        between = linker.inference.predict_between(
            left, right, threshold_match_probability=thresholds.review, warning_mode="never"
        )
        within = linker.inference.predict_within(
            left, threshold_match_probability=thresholds.review, warning_mode="never"
        )
        parts += [
            f"SELECT unique_id_l AS a, unique_id_r AS b FROM {between.physical_name}",
            f"SELECT unique_id_l, unique_id_r FROM {within.physical_name}",
        ]
        scored = con.execute(
            f"SELECT (SELECT COUNT(*) FROM {between.physical_name}) "
            f"+ (SELECT COUNT(*) FROM {within.physical_name})"
        ).fetchall()[0][0]
    deterministic_match = _deterministic_sql(plan)
    if deterministic_match:
        parts.append(
            "SELECT l.unique_id, r.unique_id FROM changed AS l JOIN records_in AS r "
            f"ON {deterministic_match} AND l.unique_id <> r.unique_id"
        )
    matched_sql = " UNION ALL ".join(parts) or (
        "SELECT CAST(NULL AS VARCHAR) AS a, CAST(NULL AS VARCHAR) AS b WHERE false"
    )
    matched = con.sql(
        f"""
        SELECT DISTINCT id AS unique_id FROM (
            SELECT a AS id FROM ({matched_sql}) UNION ALL SELECT b FROM ({matched_sql})
        ) ANTI JOIN changed_ids ON changed_ids.unique_id = id
        ORDER BY unique_id
        """
    ).to_arrow_table()["unique_id"]
    con.close()
    return Candidates(
        matched=matched.combine_chunks(),
        term_frequencies=term_frequencies,
        scored_pairs=scored,
        plan=plan,
    )
