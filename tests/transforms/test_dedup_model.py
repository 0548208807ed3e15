"""The saved linkage model carried to another SQL dialect (Spark) without running Spark.

``benchmarks/linkage/spark_check.py`` scores a network on a real local Spark session; these
checks keep the translation honest in every test run.
"""

from __future__ import annotations

import copy

import pytest
import sqlglot

from transforms.dedup import model as link_model
from transforms.dedup.link import bundled_model


def _levels(model: dict) -> list[dict]:
    return [level for c in model["comparisons"] for level in c["comparison_levels"]]


def test_saved_model_is_rebuilt_in_spark_sql_with_its_parameters() -> None:
    saved = bundled_model()
    spark = link_model.model_for_dialect(saved, "spark")
    assert spark["probability_two_random_records_match"] == pytest.approx(
        saved["probability_two_random_records_match"]
    )
    old, new = _levels(saved), _levels(spark)
    assert [lv.get("label_for_charts") for lv in old] == [lv.get("label_for_charts") for lv in new]
    for before, after in zip(old, new, strict=True):
        for name in ("m_probability", "u_probability"):
            assert after.get(name) == before.get(name)
    conditions = [lv["sql_condition"] for lv in new if lv["sql_condition"] != "ELSE"]
    for condition in conditions:
        sqlglot.parse_one(condition, read="spark")  # raises on SQL Spark cannot read
    text = " ".join(conditions)
    # DuckDB's double-quoted identifiers would be string literals on Spark.
    assert '"given_name_l"' not in text and "`given_name_l`" in text
    assert "AS VARCHAR" not in text and "AS STRING" in text
    assert "jaro_winkler_similarity" not in text and "jaro_winkler(" in text


def test_a_model_from_other_comparisons_is_refused() -> None:
    saved = copy.deepcopy(bundled_model())
    saved["comparisons"][2]["comparison_levels"].pop(3)  # "one digit apart" gone
    with pytest.raises(ValueError, match=r"birth_date.*link in full once"):
        link_model.model_for_dialect(saved, "spark")
    saved["comparisons"].pop()
    with pytest.raises(ValueError, match="compares other fields"):
        link_model.model_for_dialect(saved, "spark")
