"""Every quarantined row carries a stable rule code (issue #21 item 4), never NULL, always
one that transforms/quality/rules.py describes, so reports can group and trend by rule.

Checked three ways: each SQL quarantine model's ``rule`` column in every branch of its
UNION, evaluated as the hub runs it with every column NULL (and every literal it may take);
every problem code the connectors' readers raise maps to a rule; and rows a real build
quarantines group by rule.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest
from sqlglot import exp

from connectors.rules import LOAD_RULES, load_rule
from transforms.quality.rules import RULES
from transforms.sql import SOURCE_DIALECT, SQL_DIR, _parse, output_columns

MODELS = sorted(p.stem for p in (SQL_DIR / "quarantine").glob("*.sql"))
ROOT = Path(__file__).resolve().parents[2]


def _branches(select: exp.Expression) -> list[exp.Select]:
    if isinstance(select, exp.Union):
        return [*_branches(select.left), *_branches(select.right)]
    assert isinstance(select, exp.Select), type(select)
    return [select]


def _rule_expressions(tree: exp.Expression) -> list[exp.Expression]:
    """The expression producing ``rule`` in every SELECT that has one (by position in a
    UNION: only its first branch names its columns)."""
    found: list[exp.Expression] = []
    for node in tree.find_all(exp.Union, exp.Select):
        if isinstance(node.parent, exp.Union):
            continue  # a branch: handled with its union
        branches = _branches(node)
        names = [p.alias_or_name for p in branches[0].expressions]
        if "rule" not in names:
            continue
        index = names.index("rule")
        for branch in branches:
            projection = branch.expressions[index]
            found.append(projection.this if isinstance(projection, exp.Alias) else projection)
    return found


def _all_null(expression: exp.Expression) -> str:
    def fill(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and node.name != "rule":
            return exp.Null()
        if isinstance(node, exp.Placeholder):
            return exp.Literal.string(f"<{node.name}>")
        return node

    return expression.copy().transform(fill).sql(dialect=SOURCE_DIALECT)


@pytest.mark.parametrize("model", MODELS)
def test_every_branch_of_every_quarantine_model_names_a_known_rule(model: str) -> None:
    tree = _parse(f"quarantine/{model}")
    assert "rule" in output_columns(f"quarantine/{model}")
    expressions = _rule_expressions(tree)
    unions = [u for u in tree.find_all(exp.Union) if not isinstance(u.parent, exp.Union)]
    branches = sum(len(_branches(u)) for u in unions) or 1
    assert len(expressions) >= branches, f"{model}: a branch without a rule"
    con = duckdb.connect()
    for expression in expressions:
        if isinstance(expression, exp.Column):  # the outer SELECT passing it through
            continue
        (value,) = con.execute(f"SELECT {_all_null(expression)}").fetchone()
        assert value in RULES, f"{model}: {expression.sql()} gives {value!r} with NULL inputs"
        for literal in expression.find_all(exp.Literal):
            if literal.is_string:
                assert literal.this in RULES, f"{model}: unknown rule {literal.this!r}"


def test_every_problem_code_a_reader_raises_has_a_rule() -> None:
    """Scan the connectors for the codes they raise, so a new one cannot go unclassified."""
    codes: set[str] = set()
    for path in (ROOT / "connectors").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        codes |= set(re.findall(r'ValueProblem\(\s*"([a-z_]+)"', text))
        codes |= set(re.findall(r'SuspectRow\(\s*\w+,\s*"([a-z_]+)"', text))
    assert {"invalid_date", "duplicate_id", "unclosed_quote", "totals_row"} <= codes
    for code in codes:
        assert load_rule(code) in RULES, code
    assert set(LOAD_RULES.values()) <= set(RULES)
    assert load_rule("missing_status") == "required.missing"
    with pytest.raises(KeyError, match="add it to LOAD_RULES"):
        load_rule("brand_new_problem")


def test_rule_codes_are_stable_in_shape() -> None:
    for code, rule in RULES.items():
        assert re.fullmatch(r"[a-z]+(\.[a-z0-9_]+)?", code), code
        assert rule.title and rule.fix


def test_a_warehouse_and_raw_load_from_before_rule_codes_still_build(tmp_path: Path) -> None:
    """An upgraded hub: rejected_rows without ``rule`` gains it; a spreadsheet quarantine
    table loaded before rule codes (its file unchanged, so not reloaded) reads as
    ``unclassified`` instead of failing the member's mapping stage."""
    from tests.transforms import scenario
    from transforms.canonical import build_member
    from transforms.warehouse import DuckDBWarehouse

    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    with warehouse.connect() as session:
        session.execute("CREATE SCHEMA quarantine")
        session.execute(
            "CREATE TABLE quarantine.rejected_rows (org_id TEXT NOT NULL, source_system TEXT "
            "NOT NULL, entity TEXT NOT NULL, source_file TEXT, source_row BIGINT, source_id "
            "TEXT, column_name TEXT, raw_value TEXT, reason TEXT NOT NULL, severity TEXT NOT "
            "NULL, stage TEXT NOT NULL, _load_id TEXT)"
        )
    warehouse, members = scenario.build(tmp_path, warehouse)
    with warehouse.connect() as session:
        session.execute("ALTER TABLE raw_alpha.spreadsheet__person_quarantine DROP COLUMN rule")
    for member in members.values():
        build_member(warehouse, member)
    with warehouse.connect() as session:
        rows = session.fetchall(
            "SELECT org_id, entity, rule FROM quarantine.rejected_rows ORDER BY 1, 2"
        )
    assert rows == [
        ("alpha", "engagement", "map.engagement_status_unmapped"),
        ("alpha", "person", "unclassified"),
        ("beta", "service_delivery", "ref.person_missing"),
    ]
