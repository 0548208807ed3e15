"""The probabilistic linkage model: Splink settings, training, and scoring.

Why it is built this way:
- One dataset, ``dedupe_only``: every member's records are in one table with an ``org_id``
  column, so a person twice in one member and a person at three members are the same task.
- Consent is a blocking condition, not a filter afterwards: every blocking rule carries
  ``(l.org_id = r.org_id OR (l.consent AND r.consent))``, so a record without consent to share
  is never even compared with another member's records, and cannot contribute to a match
  across members.
- Blocking rules are equalities on normalised columns (names, birth date, e-mail, phone,
  postcode) so DuckDB (or Spark) hash-joins them; together they catch people who moved (name
  and birth date), married (given name and birth date), use a nickname (formal given name) or
  mistyped their birth date (name and birth year).
- Every comparison has a null level (a missing field is no evidence either way) and names
  carry term-frequency adjustments, so "Smith" agreeing counts for less than "Ashdown".
- Parameters are estimated from the data (u by random sampling, m by expectation
  maximisation on two independent blocking rules), seeded, so a re-run on the same records
  gives the same model. The trained model is JSON; its version is a hash of that JSON.

The settings are plain Splink SQL-free creators, so the same model runs on Spark.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from transforms.dedup.blocking import BlockingBudget, BlockingWarning, count_pairs

if TYPE_CHECKING:  # Splink is imported where a linkage runs (it costs import time)
    import pyarrow as pa
    from splink import Linker

CONSENT_RULE = "(l.org_id = r.org_id OR (l.consent AND r.consent))"

# Blocking rules: (columns that must be equal), each with the consent rule added.
BLOCKING_KEYS: tuple[tuple[str, ...], ...] = (
    ("given_canonical", "family_name", "birth_year"),
    ("birth_date", "family_name"),
    ("birth_date", "given_canonical"),
    ("email",),
    ("phone",),
    ("postcode", "given_canonical"),
    ("family_name", "given_canonical", "postcode_outward"),
)


def blocking_rule(columns: tuple[str, ...]) -> str:
    """One blocking rule as Splink SQL: the columns equal (and not null), consent honoured."""
    equal = " AND ".join(f"l.{c} = r.{c}" for c in columns)
    return f"{equal} AND {CONSENT_RULE}"


def settings(probability_two_random_records_match: float = 1e-4) -> Any:
    """Splink settings for the hub's person records (columns of ``normalise_people``)."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator

    given = cl.CustomComparison(
        output_column_name="given_name",
        comparison_levels=[
            cll.NullLevel("given_name"),
            cll.ExactMatchLevel("given_name").configure(tf_adjustment_column="given_name"),
            cll.ExactMatchLevel("given_canonical").configure(label_for_charts="nickname"),
            cll.JaroWinklerLevel("given_name", 0.92),
            cll.JaroWinklerLevel("given_name", 0.8),
            cll.ElseLevel(),
        ],
    )
    family = cl.CustomComparison(
        output_column_name="family_name",
        comparison_levels=[
            cll.NullLevel("family_name"),
            cll.ExactMatchLevel("family_name").configure(tf_adjustment_column="family_name"),
            cll.JaroWinklerLevel("family_name", 0.92),
            cll.ArrayIntersectLevel("family_tokens", 1).configure(
                label_for_charts="shares a part (married, double-barrelled)"
            ),
            cll.JaroWinklerLevel("family_name", 0.8),
            cll.ElseLevel(),
        ],
    )
    birth = cl.CustomComparison(
        output_column_name="birth_date",
        comparison_levels=[
            cll.NullLevel("birth_date"),
            cll.ExactMatchLevel("birth_date"),
            # Custom SQL is written in DuckDB's dialect and said so, so that Splink
            # translates it (sqlglot) for another backend: CAST(... AS VARCHAR) is STRING on
            # Spark. levenshtein exists in both: one mistyped digit.
            cll.CustomLevel(
                "birth_date_l = birth_date_swapped_r",
                label_for_charts="day and month swapped",
                base_dialect_str="duckdb",
            ),
            cll.CustomLevel(
                "levenshtein(CAST(birth_date_l AS VARCHAR), CAST(birth_date_r AS VARCHAR)) <= 1",
                label_for_charts="one digit apart",
                base_dialect_str="duckdb",
            ),
            cll.AbsoluteDateDifferenceLevel(
                "birth_date", threshold=1, metric="year", input_is_string=False
            ),
            cll.ElseLevel(),
        ],
    )
    postcode = cl.CustomComparison(
        output_column_name="postcode",
        comparison_levels=[
            cll.NullLevel("postcode"),
            cll.ExactMatchLevel("postcode"),
            cll.ExactMatchLevel("postcode_outward").configure(label_for_charts="same district"),
            cll.ElseLevel(),
        ],
    )
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        probability_two_random_records_match=probability_two_random_records_match,
        comparisons=[
            given,
            family,
            birth,
            cl.ExactMatch("email"),
            cl.ExactMatch("phone"),
            postcode,
        ],
        blocking_rules_to_generate_predictions=[blocking_rule(k) for k in BLOCKING_KEYS],
        retain_intermediate_calculation_columns=False,
        retain_matching_columns=False,
        additional_columns_to_retain=[],
    )


@dataclass(frozen=True)
class TrainedModel:
    """A trained Splink model and its version (a hash of its JSON)."""

    json: dict[str, Any]
    # Training rules over the pair budget, whose pairs were sampled (not part of the model).
    warnings: tuple[BlockingWarning, ...] = field(default=(), compare=False)

    @property
    def version(self) -> str:
        body = json.dumps(self.json, sort_keys=True, default=str).encode("utf-8")
        return "m_" + hashlib.sha256(body).hexdigest()[:12]


# EM's cost grows with the square of the records sharing a birth date: at 1.4M records the
# birth-date block holds ~25M pairs and training needed 10 GB. A random sample of records
# keeps the same share of matching pairs among all pairs (both shrink by the sample share
# squared), so λ, u and m come out alike, at a fraction of the memory and time.
TRAINING_SAMPLE = 300_000

# Expectation maximisation holds every pair of its blocking rule with its comparison vector,
# several times the memory of a pair waiting to be scored, so its rules get a budget of their
# own: beyond it (or the operator's rule budget, if lower) Splink's EM samples records so
# that about this many pairs remain. The sample keeps the share of matches, as above.
EM_MAX_PAIRS = 5_000_000

# The columns EM blocks on, in order: birth date (trains names, contacts, postcode), then
# names (trains birth date and the rest).
EM_RULES: tuple[tuple[str, ...], ...] = (("birth_date",), ("given_canonical", "family_name"))


def train(
    records: pa.Table,
    *,
    seed: int = 2026,
    max_pairs: float = 2e6,
    max_records: int = TRAINING_SAMPLE,
    connection: Any = None,
    budget: BlockingBudget | None = None,
) -> TrainedModel:
    """Estimate the model's parameters from normalised records (at most ``max_records``).

    λ (how likely two random records match) from near-certain rules; u by random sampling;
    m by EM, once blocked on birth date (trains names, contacts, postcode) and once on names
    (trains birth date and the rest), so no comparison is trained on its own blocking rule.
    Bigger networks are trained on a seeded random sample of their records (same seed, same
    sample, same model). An EM rule whose pairs in the sample exceed :data:`EM_MAX_PAIRS`
    (or the budget's ``max_rule_pairs``, if lower) is trained on a sample of its pairs, with
    a warning; below that, training is as it always was.
    """
    import duckdb
    from splink import block_on

    budget = budget or BlockingBudget.from_env()
    con = connection or duckdb.connect()
    sample = training_sample(records, max_records=max_records, seed=seed, connection=con)
    em_limit = min(EM_MAX_PAIRS, budget.max_rule_pairs or EM_MAX_PAIRS)
    con.register("training_pairs_in", sample)
    try:
        em_pairs = [count_pairs(con, "training_pairs_in", c, consent=False) for c in EM_RULES]
    finally:
        con.unregister("training_pairs_in")
    warnings = tuple(
        BlockingWarning(
            rule=" + ".join(columns),
            action="sampled",
            pairs_before=pairs,
            pairs_after=em_limit,
            blocks_over_budget=0,
            largest_block_records=records_in_largest,
            largest_block_pairs=largest,
            stage="training",
        )
        for columns, (pairs, largest, records_in_largest) in zip(EM_RULES, em_pairs, strict=True)
        if pairs > em_limit
    )
    linker = linker_for(sample, settings(), db_api_for(con))
    linker.training.estimate_probability_two_random_records_match(
        [
            "l.given_name = r.given_name AND l.family_name = r.family_name "
            "AND l.birth_date = r.birth_date",
            "l.email = r.email AND l.birth_date = r.birth_date",
        ],
        recall=0.8,
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs, seed=seed)
    for columns, (pairs, _, _) in zip(EM_RULES, em_pairs, strict=True):
        linker.training.estimate_parameters_using_expectation_maximisation(
            block_on(*columns),
            estimate_without_term_frequencies=True,
            # Only when over the limit: within it, EM runs on every pair as before.
            **({"max_pairs": float(em_limit)} if pairs > em_limit else {}),
        )
    return TrainedModel(linker.misc.save_model_to_json(), warnings=warnings)


def training_sample(records: pa.Table, *, max_records: int, seed: int, connection: Any) -> pa.Table:
    """At most ``max_records`` records, chosen by a seeded hash of their id (repeatable)."""
    if records.num_rows <= max_records:
        return records
    connection.register("training_records_in", records)
    try:
        return connection.sql(
            "SELECT * FROM training_records_in "
            f"ORDER BY hash(unique_id || '#{int(seed)}'), unique_id LIMIT {int(max_records)}"
        ).to_arrow_table()
    finally:
        connection.unregister("training_records_in")


def term_frequency_columns(model_json: dict[str, Any]) -> list[str]:
    """Columns whose term frequencies the model's comparisons adjust by (e.g. given_name)."""
    columns = {
        level["tf_adjustment_column"]
        for comparison in model_json.get("comparisons", [])
        for level in comparison.get("comparison_levels", [])
        if level.get("tf_adjustment_column")
    }
    return sorted(columns)


PARAMETERS = ("m_probability", "u_probability")


def model_for_dialect(model_json: dict[str, Any], dialect: str) -> dict[str, Any]:
    """A saved model's estimated parameters on the code's comparisons, in another SQL dialect.

    A model saved by a DuckDB run holds DuckDB SQL (double-quoted identifiers,
    ``jaro_winkler_similarity``) that Splink does not translate when the model is loaded on
    Spark, where ``"a" = "b"`` compares two string literals. So the comparisons are built
    afresh for ``dialect`` from :func:`settings` (Splink's dialect-aware creators) and the
    saved λ, m and u copied onto them level by level; a model whose levels do not line up
    with the code's (saved before the comparisons changed) is refused, not half applied.
    """
    fresh = settings(model_json["probability_two_random_records_match"]).create_settings_dict(
        dialect
    )
    saved = model_json["comparisons"]
    if [c["output_column_name"] for c in saved] != [
        c["output_column_name"] for c in fresh["comparisons"]
    ]:
        raise ValueError(
            "the saved linkage model compares other fields than this code does; "
            "link in full once to estimate a new one"
        )
    for old, new in zip(saved, fresh["comparisons"], strict=True):
        labels_old = [level.get("label_for_charts") for level in old["comparison_levels"]]
        labels_new = [level.get("label_for_charts") for level in new["comparison_levels"]]
        if labels_old != labels_new:
            raise ValueError(
                f"the saved linkage model's levels for {new['output_column_name']} "
                f"({labels_old}) are not this code's ({labels_new}); link in full once"
            )
        for level_old, level_new in zip(
            old["comparison_levels"], new["comparison_levels"], strict=True
        ):
            for name in PARAMETERS:
                if name in level_old:
                    level_new[name] = level_old[name]
    return fresh


def db_api_for(connection: Any = None) -> Any:
    """Splink's DuckDB handle on ``connection`` (a new in-memory database without one)."""
    import duckdb
    from splink import DuckDBAPI

    return DuckDBAPI(connection=connection or duckdb.connect())


def linker_for(records: pa.Table | str, model: dict[str, Any] | Any, db_api: Any = None) -> Linker:
    """A DuckDB-backed linker over normalised records, with settings or a trained model.

    Pass the ``db_api`` (see :func:`db_api_for`) that other tables of this linkage are
    registered with, so they share one database; ``records`` may be the name of a table in
    it (one with derived blocking keys added: ``transforms.dedup.blocking``).
    """
    from splink import Linker

    frame = (db_api or db_api_for()).register(records, dataset_display_name="people")
    return Linker(frame, model, log_level=30)
