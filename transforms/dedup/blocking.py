"""A budget for candidate pairs: blocking rules are counted before Splink scores them.

Why: a blocking rule pairs every two records of one *block* (records equal on the rule's
columns), so it makes the sum over its blocks of n·(n-1)/2 candidate pairs. With names and
addresses of ordinary variety blocks stay small, but a member file with little variety (a
million records, a few dozen given names, a handful of postcodes) or a placeholder value
typed into thousands of records (``noemail@example.org``, a default birth date) makes
blocks of thousands: one such (postcode, given name) rule made ~1.2 billion pairs, and
Splink, which materialises the blocked pairs before it scores them, ran past 12 GB.

So before anything is scored, :func:`plan_blocking` counts each rule's pairs per block with
one ``GROUP BY`` on the rule's key in DuckDB (exact, the consent rule included: pairs within
one member, plus pairs of records that both consent), and a rule over its budget
(:class:`BlockingBudget`) is **tightened**, block by block, never silently:

1. Blocks are taken smallest first while each stays within ``max_block_pairs`` and the
   rule's running total within ``max_rule_pairs`` (and within what the rules before it
   left of ``max_pairs``, the budget of all rules together); those are kept as they are.
2. The others are split by a further key column (``birth_year``, then ``family_name``,
   ``given_canonical`` or the postcode district: the first :data:`REFINE_COLUMNS` that the
   rule does not already hold) and the pieces taken
   the same way, with what is left of the rule's budget; up to :data:`MAX_REFINEMENTS`
   columns are added. (Not the deterministic rule: it means exactly its three columns.)
3. Blocks still too large after that are left out of the rule. Their records can still meet
   through the other rules (name and birth date, e-mail, phone ...).
4. A rule left with no pairs at all is **skipped** (not run at all).

Every rule touched yields a :class:`BlockingWarning`: the rule (its column names), the
blocks over the budget, the largest block's records and pairs, the columns added, the
blocks left out and the pairs dropped. A warning never holds a value of the data: blocks
are described by their size only (even a hash of a postcode and a given name could be
reversed by trying every postcode and name).

A tightened rule also blocks on a derived column (``_block_<n>``): a hash of the record's key
at the level where its block fitted, or null where it did not (null equals nothing, so those
records make no pairs by that rule). The rule keeps its own equalities as well, so a hash
collision cannot pair records that differ on the rule's columns. The plan holds the hashes
of the blocks that were too large, never values, and can be applied to another table (the
neighbourhood an incremental run re-links), so the same blocks are tightened there as in
the network they were counted in. Rules within budget are left exactly as written, so a
network that fits is linked exactly as before.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

# Defaults from benchmarks/RESULTS.md ("Linkage within a pair budget"), on 2 cores and 24 GB:
# Splink holds about 60 bytes per candidate pair, so 40M pairs stay well within the 6 GB
# target. The varied benchmark network of a million people (1.37M records) makes at most
# ~0.5M pairs in any rule, 2.9M in all, and 1,616 in its largest block: ordinary data never
# reaches these limits, only blocks of placeholders or of too little variety do.
DEFAULT_MAX_BLOCK_PAIRS = 1_000_000  # one block: about 1,400 records sharing a key
DEFAULT_MAX_RULE_PAIRS = 10_000_000  # one rule, all its blocks
DEFAULT_MAX_PAIRS = 40_000_000  # all rules together
MAX_BLOCK_PAIRS_ENV = "HUB_LINK_MAX_BLOCK_PAIRS"
MAX_RULE_PAIRS_ENV = "HUB_LINK_MAX_RULE_PAIRS"
MAX_PAIRS_ENV = "HUB_LINK_MAX_PAIRS"

# Columns that split an oversized block, most useful first: birth year separates people of
# one name at one address, family name those sharing an e-mail or a phone. A column implied
# by one of the rule's own (birth_year by birth_date) would split nothing and is passed over.
REFINE_COLUMNS: tuple[str, ...] = (
    "birth_year",
    "family_name",
    "given_canonical",
    "postcode_outward",
)
IMPLIED_BY: Mapping[str, tuple[str, ...]] = {
    "birth_date": ("birth_year",),
    "given_name": ("given_canonical",),
    "postcode": ("postcode_outward",),
}
MAX_REFINEMENTS = 2


@dataclass(frozen=True)
class BlockingBudget:
    """How many candidate pairs one block, one rule and all rules may make (None: no limit).

    Set by the hub operator (``HUB_LINK_MAX_BLOCK_PAIRS``, ``HUB_LINK_MAX_RULE_PAIRS``,
    ``HUB_LINK_MAX_PAIRS``; 0 turns a limit off), never by a member. The rules share
    ``max_pairs`` in their order (the deterministic rule first): a rule gets what is left.
    """

    max_block_pairs: int | None = DEFAULT_MAX_BLOCK_PAIRS
    max_rule_pairs: int | None = DEFAULT_MAX_RULE_PAIRS
    max_pairs: int | None = DEFAULT_MAX_PAIRS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BlockingBudget:
        """The budget from the environment, defaults where unset; a bad value is refused."""
        environ = os.environ if environ is None else environ
        return cls(
            max_block_pairs=_limit(environ, MAX_BLOCK_PAIRS_ENV, DEFAULT_MAX_BLOCK_PAIRS),
            max_rule_pairs=_limit(environ, MAX_RULE_PAIRS_ENV, DEFAULT_MAX_RULE_PAIRS),
            max_pairs=_limit(environ, MAX_PAIRS_ENV, DEFAULT_MAX_PAIRS),
        )

    @classmethod
    def unlimited(cls) -> BlockingBudget:
        """No limit: every rule as written (what the hub did before it had a budget)."""
        return cls(max_block_pairs=None, max_rule_pairs=None, max_pairs=None)

    def rule_limit(self, pairs_left: int | None) -> int | None:
        """What one rule may make when ``pairs_left`` of the overall budget remain."""
        limits = [v for v in (self.max_rule_pairs, pairs_left) if v is not None]
        return min(limits) if limits else None


def _limit(environ: Mapping[str, str], name: str, default: int) -> int | None:
    text = environ.get(name, "").strip().replace("_", "").replace(",", "")
    if not text:
        return default
    if not text.isdigit():
        raise ValueError(
            f"{name}={environ[name]!r} must be a whole number of candidate pairs (0: no limit)"
        )
    return int(text) or None


@dataclass(frozen=True)
class BlockingWarning:
    """A blocking rule that was over budget, and what was done about it. No personal data."""

    rule: str  # the rule's columns, e.g. "postcode + given_canonical"
    action: str  # tightened (blocks split or left out) | skipped (no pairs left) | sampled
    pairs_before: int  # candidate pairs the rule would have made
    pairs_after: int  # candidate pairs it makes now
    blocks_over_budget: int  # blocks not kept as they were
    largest_block_records: int
    largest_block_pairs: int
    refined_by: tuple[str, ...] = ()  # columns added to split the large blocks
    blocks_dropped: int = 0  # blocks (after splitting) left out of the rule
    records_dropped: int = 0  # the records in them: this rule pairs them with no one
    stage: str = "linking"  # linking | training

    @property
    def pairs_dropped(self) -> int:
        return self.pairs_before - self.pairs_after

    def message(self) -> str:
        """One line for the run log and the asset's metadata."""
        if self.action == "sampled":
            return (
                f"{self.stage} blocking rule [{self.rule}] sampled: {self.pairs_before:,} "
                f"pairs, over the limit for estimating the model; estimated on a sample of "
                f"about {self.pairs_after:,} pairs (largest block "
                f"{self.largest_block_records:,} records, {self.largest_block_pairs:,} pairs)"
            )
        parts = [
            f"{self.stage} blocking rule [{self.rule}] {self.action}: "
            f"{self.pairs_before:,} candidate pairs, over the budget; "
            f"{self.blocks_over_budget:,} block(s) too large, the largest "
            f"{self.largest_block_records:,} records ({self.largest_block_pairs:,} pairs)"
        ]
        if self.refined_by:
            parts.append(f"large blocks split by {' + '.join(self.refined_by)}")
        if self.blocks_dropped:
            parts.append(
                f"{self.blocks_dropped:,} block(s) of {self.records_dropped:,} records left "
                "out of this rule"
            )
        parts.append(f"{self.pairs_after:,} pairs kept, {self.pairs_dropped:,} dropped")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """The warning as plain values (Dagster metadata, JSON)."""
        return {
            "stage": self.stage,
            "rule": self.rule,
            "action": self.action,
            "pairs_before": self.pairs_before,
            "pairs_after": self.pairs_after,
            "pairs_dropped": self.pairs_dropped,
            "blocks_over_budget": self.blocks_over_budget,
            "largest_block_records": self.largest_block_records,
            "largest_block_pairs": self.largest_block_pairs,
            "refined_by": list(self.refined_by),
            "blocks_dropped": self.blocks_dropped,
            "records_dropped": self.records_dropped,
        }


@dataclass(frozen=True)
class Rule:
    """A blocking rule as the planner sees it: its key columns and its SQL."""

    columns: tuple[str, ...]
    sql: str  # the join condition over l. and r. (the consent rule included)
    refine: bool = True  # may be split by further columns (not the deterministic rule)

    @property
    def name(self) -> str:
        return " + ".join(self.columns)


@dataclass(frozen=True)
class RulePlan:
    """What to do with one rule: run it as written, on a derived key, or not at all."""

    rule: Rule
    key: str | None = None  # the derived key column, when tightened
    levels: tuple[tuple[tuple[str, ...], pa.Array], ...] = ()  # (key columns, too-large hashes)
    skipped: bool = False

    @property
    def sql(self) -> str | None:
        """The rule's join condition as it is to run; None when skipped."""
        if self.skipped:
            return None
        if self.key is None:
            return self.rule.sql
        return f"l.{self.key} = r.{self.key} AND {self.rule.sql}"


@dataclass(frozen=True)
class BlockingPlan:
    """Every rule's plan, and a warning for each rule that was over budget."""

    rules: tuple[RulePlan, ...]
    warnings: tuple[BlockingWarning, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether any rule runs otherwise than as written."""
        return any(p.key is not None or p.skipped for p in self.rules)

    def sql(self) -> list[str]:
        """The rules to run, in order, without the skipped ones."""
        return [s for s in (p.sql for p in self.rules) if s is not None]

    def add_keys(self, con: Any, table: str, out: str | None = None) -> str:
        """Create table ``out`` (default: replace ``table``): ``table`` with the derived key
        columns; return its name. Nothing is copied when no rule needs a derived key."""
        out = out or table
        derived = [p for p in self.rules if p.key is not None]
        if not derived:
            if out != table:
                con.execute(f"CREATE OR REPLACE TABLE {out} AS SELECT * FROM {table}")
            return out
        expressions = []
        registered = []
        for plan in derived:
            arms = []
            previous: tuple[str, ...] = ()
            for level, (columns, too_large) in enumerate(plan.levels):
                name = f"{plan.key}_big{level}"
                con.register(name, pa.table({"h": too_large}))
                registered.append(name)
                h = _hash(columns, level)
                arms.append(f"WHEN {_any_null(columns[len(previous) :])} THEN NULL")
                arms.append(f"WHEN {h} NOT IN (SELECT h FROM {name}) THEN {h}")
                previous = columns
            expressions.append(f"CASE {' '.join(arms)} ELSE NULL END AS {plan.key}")
        con.execute(
            f"CREATE OR REPLACE TABLE {out} AS SELECT *, {', '.join(expressions)} FROM {table}"
        )
        for name in registered:
            con.unregister(name)
        return out


def _hash(columns: Sequence[str], level: int) -> str:
    # The level salts the hash, so a block and a piece of another cannot share a key.
    return f"hash({level}, {', '.join(columns)})"


def _any_null(columns: Sequence[str]) -> str:
    return "(" + " OR ".join(f"{c} IS NULL" for c in columns) + ")"


def _refinements(columns: tuple[str, ...]) -> list[str]:
    implied = {i for c in columns for i in IMPLIED_BY.get(c, ())}
    candidates = [c for c in REFINE_COLUMNS if c not in columns and c not in implied]
    return candidates[:MAX_REFINEMENTS]


def block_counts_sql(
    table: str, columns: Sequence[str], level: int = 0, within: str = "", consent: bool = True
) -> str:
    """SQL: one row per block (h, records, pairs) of ``table`` on ``columns``.

    With ``consent``, pairs as the consent rule allows them: all pairs within one member,
    and pairs across members only of records that both consent. Without, every pair (a
    training rule has no consent condition). ``within`` restricts the records counted.
    """
    where = f"NOT {_any_null(columns)}" + (f" AND {within}" if within else "")
    if not consent:
        return f"""
            SELECT {_hash(columns, level)} AS h, COUNT(*) AS records,
                COUNT(*) * (COUNT(*) - 1) // 2 AS pairs
            FROM {table} WHERE {where} GROUP BY h
        """
    return f"""
        WITH per_member AS (
            SELECT {_hash(columns, level)} AS h, org_id, COUNT(*) AS n,
                COUNT(*) FILTER (WHERE consent) AS c
            FROM {table} WHERE {where} GROUP BY ALL
        )
        SELECT h, SUM(n) AS records,
            SUM(n * (n - 1) // 2) + SUM(c) * (SUM(c) - 1) // 2 - SUM(c * (c - 1) // 2) AS pairs
        FROM per_member GROUP BY h
    """


def count_pairs(
    con: Any, table: str, columns: Sequence[str], *, consent: bool = True
) -> tuple[int, int, int]:
    """(pairs, the largest block's pairs, its records) of blocking ``table`` on ``columns``."""
    total, largest, records = con.execute(
        "SELECT COALESCE(SUM(pairs), 0), COALESCE(MAX(pairs), 0), "
        "COALESCE(arg_max(records, pairs), 0) "
        f"FROM ({block_counts_sql(table, columns, consent=consent)})"
    ).fetchall()[0]
    return int(total), int(largest), int(records)


def plan_blocking(
    con: Any,
    table: str,
    rules: Sequence[Rule],
    budget: BlockingBudget,
    *,
    key_prefix: str = "_block_",
) -> BlockingPlan:
    """Count every rule's candidate pairs in ``table`` and tighten the rules over budget.

    ``table`` (in the DuckDB connection ``con``) holds normalised records with ``org_id``
    and ``consent``. It costs one GROUP BY per rule (and one per split), nothing like
    scoring the pairs.
    """
    plans: list[RulePlan] = []
    warnings: list[BlockingWarning] = []
    counts = f"{key_prefix}counts"
    pairs_left = budget.max_pairs
    for index, rule in enumerate(rules):
        rule_limit = budget.rule_limit(pairs_left)
        # Cheap first: every pair of every block, consent aside, is an upper bound. Most
        # rules fit by it; only those that do not are counted exactly, member by member.
        bound, bound_largest = _upper_bound(con, table, rule.columns)
        if _within(bound_largest, budget.max_block_pairs) and _within(bound, rule_limit):
            plans.append(RulePlan(rule))
            pairs_left = None if pairs_left is None else pairs_left - bound
            continue
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {counts} AS {block_counts_sql(table, rule.columns)}"
        )
        total, largest_pairs, largest_records = (
            int(v)
            for v in con.execute(
                "SELECT COALESCE(SUM(pairs), 0), COALESCE(MAX(pairs), 0), "
                f"COALESCE(arg_max(records, pairs), 0) FROM {counts}"
            ).fetchall()[0]
        )
        if _within(largest_pairs, budget.max_block_pairs) and _within(total, rule_limit):
            plans.append(RulePlan(rule))
            pairs_left = None if pairs_left is None else pairs_left - total
            continue
        plan, outcome = _tighten(
            con, table, rule, budget.max_block_pairs, rule_limit, f"{key_prefix}{index}", counts
        )
        pairs_left = None if pairs_left is None else pairs_left - outcome["pairs_after"]
        plans.append(plan)
        warnings.append(
            BlockingWarning(
                rule=rule.name,
                pairs_before=total,
                largest_block_records=largest_records,
                largest_block_pairs=largest_pairs,
                **outcome,
            )
        )
    con.execute(f"DROP TABLE IF EXISTS {counts}")
    return BlockingPlan(tuple(plans), tuple(warnings))


def _upper_bound(con: Any, table: str, columns: Sequence[str]) -> tuple[int, int]:
    """(pairs, largest block's pairs) of blocking on ``columns`` if everyone consented."""
    total, largest = con.execute(
        "SELECT COALESCE(SUM(n * (n - 1) // 2), 0), COALESCE(MAX(n * (n - 1) // 2), 0) "
        f"FROM (SELECT COUNT(*) AS n FROM {table} WHERE NOT {_any_null(columns)} "
        f"GROUP BY {', '.join(columns)})"
    ).fetchall()[0]
    return int(total), int(largest)


def _within(pairs: int, limit: int | None) -> bool:
    return limit is None or pairs <= limit


def _tighten(
    con: Any,
    table: str,
    rule: Rule,
    block_limit: int | None,
    rule_limit: int | None,
    key: str,
    counts: str,
) -> tuple[RulePlan, dict[str, Any]]:
    """Keep the blocks that fit, split the others by further columns, leave out the rest.

    ``counts`` holds the rule's blocks (h, records, pairs); it is rewritten at each split.
    """
    refinements = _refinements(rule.columns) if rule.refine else []
    remaining = rule_limit
    columns = rule.columns
    levels: list[tuple[tuple[str, ...], pa.Array]] = []
    kept = blocks_over = too_large = too_large_records = 0
    big = f"{key}_big"
    for level in range(len(refinements) + 1):
        fits = _fits_sql(block_limit, remaining)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {big} AS SELECT h, records FROM "
            f"(SELECT h, records, {fits} AS fits FROM {counts}) WHERE NOT fits"
        )
        kept_here = int(
            con.execute(
                f"SELECT COALESCE(SUM(pairs), 0) FROM {counts} ANTI JOIN {big} USING (h)"
            ).fetchall()[0][0]
        )
        too_large, too_large_records = (
            int(v)
            for v in con.execute(
                f"SELECT COUNT(*), COALESCE(SUM(records), 0) FROM {big}"
            ).fetchall()[0]
        )
        hashes = con.sql(f"SELECT h FROM {big} ORDER BY h").to_arrow_table()["h"]
        levels.append((columns, hashes.combine_chunks()))
        kept += kept_here
        if remaining is not None:
            remaining -= kept_here
        if level == 0:
            blocks_over = too_large
        if too_large == 0 or level == len(refinements):
            break
        # The records of the blocks that did not fit, in pieces split by one more column.
        within = f"{_hash(columns, level)} IN (SELECT h FROM {big})"
        columns = (*columns, refinements[level])
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {counts} AS "
            f"{block_counts_sql(table, columns, level + 1, within)}"
        )
    con.execute(f"DROP TABLE IF EXISTS {big}")
    skipped = kept == 0
    plan = RulePlan(
        rule,
        key=None if skipped else key,
        levels=() if skipped else tuple(levels),
        skipped=skipped,
    )
    return plan, {
        "action": "skipped" if skipped else "tightened",
        "pairs_after": kept,
        "blocks_over_budget": blocks_over,
        "refined_by": columns[len(rule.columns) :],
        "blocks_dropped": too_large,
        "records_dropped": too_large_records,
    }


def _fits_sql(block_limit: int | None, remaining: int | None) -> str:
    """Whether a block fits: within the block limit and, taking blocks smallest first,
    within what is left of the rule's budget."""
    conditions = []
    if block_limit is not None:
        conditions.append(f"pairs <= {int(block_limit)}")
    if remaining is not None:
        conditions.append(
            f"SUM(pairs) OVER (ORDER BY pairs, h ROWS UNBOUNDED PRECEDING) <= {int(remaining)}"
        )
    return " AND ".join(conditions) or "true"
