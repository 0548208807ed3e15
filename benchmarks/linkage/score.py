"""Score a linkage of the synthetic benchmark (``benchmarks.linkage.generate``) against its truth.

Run ``.venv/bin/python -m benchmarks.linkage.score --truth DIR --predicted FILE``. ``FILE`` is
Parquet (or CSV) with one row per record: ``org_id, source_id, person_key`` (for example
``hub.person_link`` exported). It prints, and ``score()`` returns:

- pairwise precision, recall and F1 over all record pairs placed in one cluster, computed
  from contingency counts (``n*(n-1)/2`` per cell), never by listing pairs, so 1.4M records
  score in seconds;
- B-cubed precision, recall and F1 (per-record averages, less dominated by big clusters);
- for each kind of hard non-match (twins, parent_child, ...) how many pairs were wrongly
  merged, and for each kind of hard match (moved, married, ...) how many were found;
- how many non-consenting records ended up in a cluster spanning several members.

What counts as "the right answer". The hub must not link a record whose member has no
consent to share with records of other members (``../shared/DESIGN.md``, Deduplication). So by
default the target is the *linkable* truth: a person's records form one cluster, except that
when the person is known to several members, each member's non-consenting records form a
cluster of their own. ``--identity`` scores against the raw identities instead (a ceiling
no consent-respecting linker can reach when consent is missing).

Records the prediction leaves out count as singletons (and are reported); predicted rows for
records the truth does not know are ignored (and reported); a record predicted twice is an
error, because a record belongs to exactly one person.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

HARD_NON_MATCH_KINDS = ("twins", "parent_child", "household_shared_contact", "common_name")
HARD_MATCH_KINDS = ("moved", "married", "nickname", "dob_swap", "typo")

Against = Literal["linkable", "identity"]


def linkable_key_sql(relation: str) -> str:
    """SQL selecting ``org_id, source_id, true_person_id, consent_to_share, linkable_id``.

    ``relation`` (a table name) must have the first four columns. Shared by the generator
    (which keeps only hard matches the hub may merge) and the scorer, so both use one
    definition of the target: a person known to a single member is one cluster; a person
    known to several members keeps the consenting records together and each member's
    non-consenting records apart.
    """
    return f"""
        SELECT
            r.org_id,
            r.source_id,
            r.true_person_id,
            r.consent_to_share,
            CASE
                WHEN r.consent_to_share OR s.orgs = 1 THEN CAST(r.true_person_id AS VARCHAR)
                ELSE CAST(r.true_person_id AS VARCHAR) || '@' || r.org_id
            END AS linkable_id
        FROM {relation} AS r
        JOIN (
            SELECT true_person_id, COUNT(DISTINCT org_id) AS orgs
            FROM {relation} GROUP BY true_person_id
        ) AS s ON s.true_person_id = r.true_person_id
    """


@dataclass(frozen=True)
class KindScore:
    """One kind of hard pair: how many pairs there are and how many the linkage merged."""

    pairs: int
    merged: int

    @property
    def fraction_merged(self) -> float:
        """Merged / pairs (0.0 when there are no pairs of this kind)."""
        return self.merged / self.pairs if self.pairs else 0.0


@dataclass(frozen=True)
class Scores:
    """Every figure the scorer prints; ``hard_non_matches`` merged are errors, ``hard_matches``
    merged are successes (``fraction_merged`` is their recall)."""

    against: str
    records: int
    missing_records: int
    unknown_records: int
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    pairwise_precision: float
    pairwise_recall: float
    pairwise_f1: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f1: float
    consent_violations: int
    hard_non_matches: dict[str, KindScore] = field(default_factory=dict)
    hard_matches: dict[str, KindScore] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dict (kind scores carry their fraction too)."""
        out = asdict(self)
        for group in ("hard_non_matches", "hard_matches"):
            for kind, value in getattr(self, group).items():
                out[group][kind]["fraction_merged"] = value.fraction_merged
        return out

    def __str__(self) -> str:
        """The report, so ``print(scores)`` shows the table rather than the dataclass."""
        return self.report()

    def report(self) -> str:
        """A short human-readable table."""
        lines = [
            f"records scored: {self.records:,} (against {self.against} truth; "
            f"{self.missing_records:,} missing from prediction, scored as singletons; "
            f"{self.unknown_records:,} predicted rows not in truth, ignored)",
            f"pairs: true {self.true_pairs:,}, predicted {self.predicted_pairs:,}, "
            f"correct {self.correct_pairs:,}",
            f"pairwise  precision {self.pairwise_precision:.4f}  recall "
            f"{self.pairwise_recall:.4f}  F1 {self.pairwise_f1:.4f}",
            f"B-cubed   precision {self.bcubed_precision:.4f}  recall "
            f"{self.bcubed_recall:.4f}  F1 {self.bcubed_f1:.4f}",
            f"non-consenting records in a multi-member cluster: {self.consent_violations:,}",
            "hard non-matches wrongly merged (lower is better):",
        ]
        for kind, value in self.hard_non_matches.items():
            lines.append(
                f"  {kind:<26} {value.merged:>8,} / {value.pairs:>8,}  "
                f"({value.fraction_merged:.2%})"
            )
        lines.append("hard matches found (recall, higher is better):")
        for kind, value in self.hard_matches.items():
            lines.append(
                f"  {kind:<26} {value.merged:>8,} / {value.pairs:>8,}  "
                f"({value.fraction_merged:.2%})"
            )
        lines.append(f"scored in {self.seconds:.2f} s")
        return "\n".join(lines)


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _kind_scores(
    con: duckdb.DuckDBPyConnection, path: Path, kinds: tuple[str, ...]
) -> dict[str, KindScore]:
    """Pairs per kind and how many have both records in one predicted cluster."""
    found: dict[str, KindScore] = {kind: KindScore(0, 0) for kind in kinds}
    if not path.exists():
        return found
    rows = con.execute(
        """
        SELECT h.kind, COUNT(*), COUNT(*) FILTER (WHERE l.pkey = r.pkey)
        FROM read_parquet(?) AS h
        JOIN scored AS l ON l.org_id = h.org_id_l AND l.source_id = h.source_id_l
        JOIN scored AS r ON r.org_id = h.org_id_r AND r.source_id = h.source_id_r
        GROUP BY h.kind
        """,
        [str(path)],
    ).fetchall()
    for kind, pairs, merged in rows:
        found[kind] = KindScore(int(pairs), int(merged))
    return found


def score(truth_dir: Path, predicted: pa.Table, against: Against = "linkable") -> Scores:
    """Score ``predicted`` (``org_id, source_id, person_key``) against the truth in
    ``truth_dir`` (the generator's output folder: ``truth.parquet``, ``records.parquet`` for
    consent, ``hard_pairs.parquet``, ``hard_matches.parquet``)."""
    started = time.perf_counter()
    truth_dir = Path(truth_dir)
    missing_columns = {"org_id", "source_id", "person_key"} - set(predicted.column_names)
    if missing_columns:
        raise ValueError(f"predicted table lacks column(s): {sorted(missing_columns)}")
    con = duckdb.connect()
    # No bar on stderr for long queries (a global option: refused if another connection in
    # this process, e.g. the linker's, already set it).
    with contextlib.suppress(duckdb.Error):
        con.execute("SET enable_progress_bar = false")
    try:
        con.register("predicted_in", predicted.select(["org_id", "source_id", "person_key"]))
        repeated = con.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM predicted_in GROUP BY org_id, source_id "
            "HAVING COUNT(*) > 1)"
        ).fetchone()[0]
        if repeated:
            raise ValueError(
                f"{repeated} record(s) appear more than once in the prediction; each "
                "(org_id, source_id) must have exactly one person_key"
            )
        truth_file = str(truth_dir / "truth.parquet")
        records_file = str(truth_dir / "records.parquet")
        con.execute(
            "CREATE TEMP TABLE truth_in AS "
            "SELECT t.org_id, t.source_id, t.true_person_id, r.consent_to_share "
            "FROM read_parquet(?) AS t JOIN read_parquet(?) AS r USING (org_id, source_id)",
            [truth_file, records_file],
        )
        con.execute(f"CREATE TEMP TABLE truth AS {linkable_key_sql('truth_in')}")
        truth_key = "linkable_id" if against == "linkable" else "CAST(true_person_id AS VARCHAR)"
        # A record the prediction leaves out (or gives no key) stands alone: chr(0) keeps its
        # made-up key from ever equalling a real person_key.
        con.execute(
            f"""
            CREATE TEMP TABLE scored AS
            SELECT
                t.org_id,
                t.source_id,
                t.consent_to_share AS consent,
                {truth_key} AS tkey,
                COALESCE(
                    CAST(p.person_key AS VARCHAR),
                    chr(0) || 'missing:' || t.org_id || ':' || t.source_id
                ) AS pkey,
                p.person_key IS NULL AS missing
            FROM truth AS t
            LEFT JOIN predicted_in AS p USING (org_id, source_id)
            """
        )
        records, missing = con.execute(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE missing) FROM scored"
        ).fetchone()
        unknown = con.execute(
            "SELECT COUNT(*) FROM predicted_in AS p ANTI JOIN truth AS t USING (org_id, source_id)"
        ).fetchone()[0]
        correct, true_pairs, predicted_pairs, bc_p, bc_r = con.execute(
            """
            WITH cells AS (SELECT tkey, pkey, COUNT(*) AS n FROM scored GROUP BY tkey, pkey),
            t AS (SELECT tkey, COUNT(*) AS n FROM scored GROUP BY tkey),
            p AS (SELECT pkey, COUNT(*) AS n FROM scored GROUP BY pkey)
            SELECT
                (SELECT CAST(SUM(n * (n - 1) // 2) AS BIGINT) FROM cells),
                (SELECT CAST(SUM(n * (n - 1) // 2) AS BIGINT) FROM t),
                (SELECT CAST(SUM(n * (n - 1) // 2) AS BIGINT) FROM p),
                (SELECT SUM(c.n * c.n / p.n) FROM cells AS c JOIN p USING (pkey)),
                (SELECT SUM(c.n * c.n / t.n) FROM cells AS c JOIN t USING (tkey))
            """
        ).fetchone()
        violations = con.execute(
            """
            WITH spans AS (SELECT pkey, COUNT(DISTINCT org_id) AS orgs FROM scored GROUP BY pkey)
            SELECT COUNT(*) FROM scored JOIN spans USING (pkey)
            WHERE NOT scored.consent AND spans.orgs > 1
            """
        ).fetchone()[0]
        hard_non = _kind_scores(con, truth_dir / "hard_pairs.parquet", HARD_NON_MATCH_KINDS)
        hard = _kind_scores(con, truth_dir / "hard_matches.parquet", HARD_MATCH_KINDS)
    finally:
        con.close()
    correct, true_pairs, predicted_pairs = (
        int(correct or 0),
        int(true_pairs or 0),
        int(predicted_pairs or 0),
    )
    # No predicted pairs means nothing was merged wrongly: precision 1 by convention.
    precision = correct / predicted_pairs if predicted_pairs else 1.0
    recall = correct / true_pairs if true_pairs else 1.0
    bcubed_precision = float(bc_p) / records if records else 1.0
    bcubed_recall = float(bc_r) / records if records else 1.0
    return Scores(
        against=against,
        records=int(records),
        missing_records=int(missing),
        unknown_records=int(unknown),
        true_pairs=true_pairs,
        predicted_pairs=predicted_pairs,
        correct_pairs=correct,
        pairwise_precision=precision,
        pairwise_recall=recall,
        pairwise_f1=_f1(precision, recall),
        bcubed_precision=bcubed_precision,
        bcubed_recall=bcubed_recall,
        bcubed_f1=_f1(bcubed_precision, bcubed_recall),
        consent_violations=int(violations),
        hard_non_matches=hard_non,
        hard_matches=hard,
        seconds=time.perf_counter() - started,
    )


def read_predicted(path: Path) -> pa.Table:
    """Parquet, or CSV when the name ends in .csv (ids read as text, never as numbers)."""
    if path.suffix.lower() == ".csv":
        text = pacsv.ConvertOptions(column_types={"org_id": pa.string(), "source_id": pa.string()})
        return pacsv.read_csv(path, convert_options=text)
    return pq.read_table(path)


def main(argv: list[str] | None = None) -> int:
    """CLI: print the report (or JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--truth", type=Path, required=True, help="the generator's --out folder")
    parser.add_argument(
        "--predicted", type=Path, required=True, help="org_id, source_id, person_key"
    )
    parser.add_argument(
        "--identity",
        action="store_true",
        help="score against raw identities, ignoring the consent rule",
    )
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    args = parser.parse_args(argv)
    result = score(
        args.truth,
        read_predicted(args.predicted),
        against="identity" if args.identity else "linkable",
    )
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
