"""The synthetic linkage benchmark: the generator keeps its promises, the scorer counts right.

The generator's claims are checked here with independent Python code (not the SQL it uses),
on a small population: same seed same files, the canonical person columns exactly, every
value parseable by the hub's own parsers, and every hard pair really having the property
its kind names. The scorer is checked on tiny hand-worked examples.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from nicknames import NickNamer

from benchmarks.linkage.generate import generate
from benchmarks.linkage.score import HARD_MATCH_KINDS, HARD_NON_MATCH_KINDS, score
from connectors.values import parse_phone, parse_postcode

PEOPLE = 2000
FILES = ("records.parquet", "truth.parquet", "hard_pairs.parquet", "hard_matches.parquet")


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("linkbench")
    generate(PEOPLE, orgs=8, seed=7, out=out)
    return out


@pytest.fixture(scope="module")
def records(bench: Path) -> dict[tuple[str, str], dict]:
    """(org_id, source_id) -> record with its true_person_id."""
    truth = {
        (r["org_id"], r["source_id"]): r["true_person_id"]
        for r in pq.read_table(bench / "truth.parquet").to_pylist()
    }
    rows = {}
    for r in pq.read_table(bench / "records.parquet").to_pylist():
        r["true_person_id"] = truth[(r["org_id"], r["source_id"])]
        rows[(r["org_id"], r["source_id"])] = r
    return rows


# --- independent normalisation (what a linker would compare) -----------------------------


def name_key(value: str | None) -> str | None:
    if value is None:
        return None
    folded = "".join(
        c for c in unicodedata.normalize("NFKD", value.lower()) if not unicodedata.combining(c)
    )
    letters = re.sub(r"[^a-z]", "", folded)
    return letters.removesuffix("jr") or None


def postcode_key(value: str | None) -> str | None:
    return parse_postcode(value) if value else None


def phone_key(value: str | None) -> str | None:
    return parse_phone(value, "GB") if value else None


def email_key(value: str | None) -> str | None:
    return value.strip().lower() if value else None


def edits(a: str, b: str) -> int:
    """Levenshtein distance (insert, delete, substitute), for the typo pairs."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def pairs(bench: Path, name: str) -> list[dict]:
    return pq.read_table(bench / name).to_pylist()


# --- generator ----------------------------------------------------------------------------


def test_same_seed_same_files_other_seed_other_files(bench: Path, tmp_path: Path) -> None:
    generate(PEOPLE, orgs=8, seed=7, out=tmp_path / "again")
    for name in FILES:
        assert pq.read_table(tmp_path / "again" / name).equals(pq.read_table(bench / name)), name
    generate(PEOPLE, orgs=8, seed=8, out=tmp_path / "other")
    assert not pq.read_table(tmp_path / "other" / "records.parquet").equals(
        pq.read_table(bench / "records.parquet")
    )


def test_files_have_exactly_the_promised_columns(bench: Path) -> None:
    assert pq.read_schema(bench / "records.parquet").remove_metadata() == pa.schema(
        [
            pa.field("org_id", pa.string(), nullable=False),
            pa.field("source_id", pa.string(), nullable=False),
            pa.field("given_name", pa.string()),
            pa.field("family_name", pa.string()),
            pa.field("birth_date", pa.date32()),
            pa.field("email", pa.string()),
            pa.field("phone", pa.string()),
            pa.field("postcode", pa.string()),
            pa.field("consent_to_share", pa.bool_(), nullable=False),
        ]
    )
    assert pq.read_schema(bench / "truth.parquet").names == [
        "org_id",
        "source_id",
        "true_person_id",
    ]
    for name in ("hard_pairs.parquet", "hard_matches.parquet"):
        assert pq.read_schema(bench / name).names == [
            "org_id_l",
            "source_id_l",
            "org_id_r",
            "source_id_r",
            "kind",
        ]


def test_truth_covers_every_record_once_and_the_mix_is_realistic(
    bench: Path, records: dict[tuple[str, str], dict]
) -> None:
    truth = pq.read_table(bench / "truth.parquet").to_pylist()
    assert len(truth) == len(records) == len({(t["org_id"], t["source_id"]) for t in truth})
    people = {r["true_person_id"] for r in records.values()}
    assert len(people) == PEOPLE
    orgs_of: dict[int, set[str]] = {}
    for (org, _sid), r in records.items():
        orgs_of.setdefault(r["true_person_id"], set()).add(org)
    multi = sum(len(o) >= 2 for o in orgs_of.values()) / PEOPLE
    assert 0.12 <= multi <= 0.30
    assert len(records) > sum(len(o) for o in orgs_of.values())  # duplicates within a member
    n = len(records)

    def share(field: str) -> float:
        return sum(r[field] is None for r in records.values()) / n

    assert 0.04 <= share("birth_date") <= 0.12
    assert 0.22 <= share("email") <= 0.40
    assert 0.12 <= share("phone") <= 0.28
    assert 0.02 <= share("postcode") <= 0.09
    assert 0.05 <= sum(not r["consent_to_share"] for r in records.values()) / n <= 0.16


def test_values_are_written_in_many_ways_and_the_hub_parses_them_all(
    records: dict[tuple[str, str], dict],
) -> None:
    phones = [r["phone"] for r in records.values() if r["phone"]]
    postcodes = [r["postcode"] for r in records.values() if r["postcode"]]
    assert all(parse_phone(p, "GB").startswith("+44") for p in phones)
    assert all(parse_postcode(p) for p in postcodes)
    assert any(p.startswith("+44 (0)") for p in phones)
    assert any(p.startswith("+447") for p in phones)
    assert any(p.startswith("(0") for p in phones)
    assert any(re.fullmatch(r"07\d{9}", p) for p in phones)
    assert any(p.islower() for p in postcodes) and any("  " in p for p in postcodes)
    assert any(" " not in p for p in postcodes)
    given = [r["given_name"] for r in records.values() if r["given_name"]]
    family = [r["family_name"] for r in records.values() if r["family_name"]]
    assert any(g.isupper() and len(g) > 3 for g in given)
    assert any(g.endswith(" ") for g in given + family)
    assert any("ë" in g or "é" in g or "â" in g for g in given)
    assert any("-" in f for f in family)
    emails = [r["email"] for r in records.values() if r["email"]]
    assert all(e.strip().lower().split("@")[1].startswith("example.") for e in emails)


def test_hard_non_match_pairs_have_the_property_they_claim(
    bench: Path, records: dict[tuple[str, str], dict]
) -> None:
    found = pairs(bench, "hard_pairs.parquet")
    assert {p["kind"] for p in found} == set(HARD_NON_MATCH_KINDS)
    for p in found:
        a = records[(p["org_id_l"], p["source_id_l"])]
        b = records[(p["org_id_r"], p["source_id_r"])]
        assert a["true_person_id"] != b["true_person_id"], p
        assert (p["org_id_l"], p["source_id_l"]) < (p["org_id_r"], p["source_id_r"])
        same_family = name_key(a["family_name"]) == name_key(b["family_name"]) is not None
        same_given = name_key(a["given_name"]) == name_key(b["given_name"]) is not None
        same_postcode = postcode_key(a["postcode"]) == postcode_key(b["postcode"]) is not None
        if p["kind"] == "twins":
            assert same_family and same_postcode and not same_given, p
            assert a["birth_date"] == b["birth_date"] is not None, p
        elif p["kind"] == "parent_child":
            assert same_given and same_family and same_postcode, p
            years = abs((a["birth_date"] - b["birth_date"]).days) / 365.25
            assert 19 <= years <= 41, p
        elif p["kind"] == "household_shared_contact":
            assert (email_key(a["email"]) == email_key(b["email"]) is not None) or (
                phone_key(a["phone"]) == phone_key(b["phone"]) is not None
            ), p
        else:
            assert same_given and same_family, p
    pair_keys = [tuple(p.values())[:4] for p in found]
    assert len(pair_keys) == len(set(pair_keys))  # one kind per pair


def test_hard_match_pairs_have_the_property_they_claim(
    bench: Path, records: dict[tuple[str, str], dict]
) -> None:
    namer = NickNamer()
    found = pairs(bench, "hard_matches.parquet")
    assert {p["kind"] for p in found} == set(HARD_MATCH_KINDS)
    for p in found:
        a = records[(p["org_id_l"], p["source_id_l"])]
        b = records[(p["org_id_r"], p["source_id_r"])]
        assert a["true_person_id"] == b["true_person_id"], p
        # The consent rule allows merging them: same member, or both consent.
        assert a["org_id"] == b["org_id"] or (a["consent_to_share"] and b["consent_to_share"])
        if p["kind"] == "moved":
            assert postcode_key(a["postcode"]) != postcode_key(b["postcode"]), p
            assert a["postcode"] and b["postcode"]
        elif p["kind"] == "married":
            assert name_key(a["family_name"]) != name_key(b["family_name"]), p
        elif p["kind"] == "nickname":
            ga, gb = name_key(a["given_name"]), name_key(b["given_name"])
            assert ga != gb and (gb in namer.nicknames_of(ga) or ga in namer.nicknames_of(gb))
        elif p["kind"] == "dob_swap":
            da, db = a["birth_date"], b["birth_date"]
            assert da != db and dt.date(da.year, da.day, da.month) == db, p
        else:
            ga, gb = name_key(a["given_name"]), name_key(b["given_name"])
            fa, fb = name_key(a["family_name"]), name_key(b["family_name"])
            assert (ga, fa) != (gb, fb) and 1 <= edits(ga, gb) + edits(fa, fb) <= 2, p


def test_manifest_counts_match_the_files(bench: Path) -> None:
    import json

    manifest = json.loads((bench / "manifest.json").read_text())
    assert manifest["parameters"] == {"people": PEOPLE, "orgs": 8, "seed": 7}
    assert manifest["counts"]["records"] == pq.read_metadata(bench / "records.parquet").num_rows
    kinds = pq.read_table(bench / "hard_pairs.parquet")["kind"].to_pylist()
    assert manifest["counts"]["hard_pairs"] == {k: kinds.count(k) for k in HARD_NON_MATCH_KINDS}
    assert manifest["phone_region"] == "GB"


def test_truth_scores_perfectly_and_singletons_find_nothing(bench: Path) -> None:
    truth = pq.read_table(bench / "truth.parquet")
    perfect = score(
        bench,
        pa.table(
            {
                "org_id": truth["org_id"],
                "source_id": truth["source_id"],
                "person_key": truth["true_person_id"],
            }
        ),
        against="identity",
    )
    assert perfect.pairwise_f1 == perfect.bcubed_f1 == 1.0
    assert all(v.merged == 0 for v in perfect.hard_non_matches.values())
    assert all(v.fraction_merged == 1.0 for v in perfect.hard_matches.values())
    alone = score(bench, truth.select(["org_id", "source_id"]).append_column(
        "person_key", pa.array([f"k{i}" for i in range(truth.num_rows)])
    ))  # fmt: skip
    assert alone.pairwise_recall == 0.0 and alone.pairwise_precision == 1.0
    assert alone.bcubed_precision == 1.0 and alone.bcubed_recall < 1.0


# --- scorer on hand-worked examples -------------------------------------------------------


def _tiny_truth(
    folder: Path,
    people: dict[str, int],
    no_consent: set[str] = frozenset(),
    orgs: dict[str, str] | None = None,
) -> Path:
    """A truth folder for records named by letter; all in org_a unless ``orgs`` says."""
    orgs = orgs or {}
    ids = sorted(people)
    org_of = [orgs.get(i, "org_a") for i in ids]
    pq.write_table(
        pa.table({"org_id": org_of, "source_id": ids, "true_person_id": [people[i] for i in ids]}),
        folder / "truth.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "org_id": org_of,
                "source_id": ids,
                "consent_to_share": [i not in no_consent for i in ids],
            }
        ),
        folder / "records.parquet",
    )
    return folder


def _predict(keys: dict[str, str], orgs: dict[str, str] | None = None) -> pa.Table:
    orgs = orgs or {}
    return pa.table(
        {
            "org_id": [orgs.get(i, "org_a") for i in keys],
            "source_id": list(keys),
            "person_key": list(keys.values()),
        }
    )


def test_scores_worked_by_hand(tmp_path: Path) -> None:
    # Truth {a,b,c},{d}; predicted {a,b},{c,d}.
    # Pairwise: true pairs ab ac bc = 3; predicted pairs ab cd = 2; correct ab = 1.
    #   precision 1/2, recall 1/3, F1 = 2*(1/2)(1/3)/(1/2+1/3) = (1/3)/(5/6) = 0.4.
    # B-cubed, per record |pred ∩ truth| / |pred| and / |truth|:
    #   a: 2/2, 2/3   b: 2/2, 2/3   c: 1/2, 1/3   d: 1/2, 1/1
    #   precision (1+1+.5+.5)/4 = 0.75, recall (2/3+2/3+1/3+1)/4 = 2/3,
    #   F1 = 2(.75)(2/3)/(.75+2/3) = 1/(17/12) = 12/17.
    truth = _tiny_truth(tmp_path, {"a": 1, "b": 1, "c": 1, "d": 2})
    got = score(truth, _predict({"a": "x", "b": "x", "c": "y", "d": "y"}))
    assert (got.true_pairs, got.predicted_pairs, got.correct_pairs) == (3, 2, 1)
    assert got.pairwise_precision == pytest.approx(0.5)
    assert got.pairwise_recall == pytest.approx(1 / 3)
    assert got.pairwise_f1 == pytest.approx(0.4)
    assert got.bcubed_precision == pytest.approx(0.75)
    assert got.bcubed_recall == pytest.approx(2 / 3)
    assert got.bcubed_f1 == pytest.approx(12 / 17)
    assert got.missing_records == 0
    assert "pairwise  precision 0.5000  recall 0.3333  F1 0.4000" in str(got)


def test_missing_records_are_singletons_and_reported(tmp_path: Path) -> None:
    # d is left out: predicted {a,b,c},{d}. Truth {a,b},{c,d}.
    # Pairwise: true ab cd = 2, predicted ab ac bc = 3, correct ab = 1: P 1/3, R 1/2.
    truth = _tiny_truth(tmp_path, {"a": 1, "b": 1, "c": 2, "d": 2})
    got = score(truth, _predict({"a": "x", "b": "x", "c": "x", "zz": "x"}))
    assert got.missing_records == 1 and got.unknown_records == 1
    assert got.pairwise_precision == pytest.approx(1 / 3)
    assert got.pairwise_recall == pytest.approx(1 / 2)


def test_consent_rule_sets_the_target(tmp_path: Path) -> None:
    # Person 1 has a at org_a (no consent) and b at org_b. The linkable truth keeps them
    # apart, so merging them is a wrong pair and a consent violation; the identity truth
    # counts the same merge as right.
    orgs = {"a": "org_a", "b": "org_b"}
    truth = _tiny_truth(tmp_path, {"a": 1, "b": 1}, no_consent={"a"}, orgs=orgs)
    merged = _predict({"a": "x", "b": "x"}, orgs)
    linkable = score(truth, merged)
    assert linkable.true_pairs == 0 and linkable.pairwise_precision == 0.0
    assert linkable.consent_violations == 1
    assert score(truth, merged, against="identity").pairwise_f1 == 1.0
    apart = score(truth, _predict({"a": "x", "b": "y"}, orgs))
    assert apart.pairwise_f1 == apart.bcubed_f1 == 1.0  # nothing to find, nothing wrong


def test_hard_pairs_per_kind(tmp_path: Path) -> None:
    truth = _tiny_truth(tmp_path, {"a": 1, "b": 2, "c": 3, "d": 4, "e": 4})
    rows = [("a", "b", "twins"), ("c", "d", "common_name")]
    pq.write_table(
        pa.table(
            {
                "org_id_l": ["org_a"] * 2,
                "source_id_l": [r[0] for r in rows],
                "org_id_r": ["org_a"] * 2,
                "source_id_r": [r[1] for r in rows],
                "kind": [r[2] for r in rows],
            }
        ),
        truth / "hard_pairs.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "org_id_l": ["org_a"],
                "source_id_l": ["d"],
                "org_id_r": ["org_a"],
                "source_id_r": ["e"],
                "kind": ["married"],
            }
        ),
        truth / "hard_matches.parquet",
    )
    got = score(truth, _predict({"a": "x", "b": "x", "c": "y", "d": "z", "e": "w"}))
    assert got.hard_non_matches["twins"].merged == 1
    assert got.hard_non_matches["twins"].fraction_merged == 1.0
    assert got.hard_non_matches["common_name"].merged == 0
    assert got.hard_non_matches["parent_child"].pairs == 0
    assert got.hard_matches["married"].pairs == 1 and got.hard_matches["married"].merged == 0


def test_a_record_predicted_twice_is_refused(tmp_path: Path) -> None:
    truth = _tiny_truth(tmp_path, {"a": 1})
    doubled = pa.table(
        {"org_id": ["org_a", "org_a"], "source_id": ["a", "a"], "person_key": ["x", "y"]}
    )
    with pytest.raises(ValueError, match="more than once"):
        score(truth, doubled)
