"""No quarantine reason may ever be NULL (issue #19): a NULL reason fails the whole mapping
stage (rejected_rows.reason is NOT NULL), so one odd record stops a member for good.

Every text a quarantine model builds with ``||`` is evaluated here, as the hub runs it, with
every column it reads set to NULL (a blank field, a deletion marker, a missing join): it must
still be a message. All models under transforms/sql/quarantine/ are checked, so a new reason
is covered the day it is written. The models as written are checked too, without the
renderer's NULL-safe rewrite, to prove this test finds what it is for.
"""

from __future__ import annotations

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from transforms.sql import BLANK, SOURCE_DIALECT, SQL_DIR, _parse

MODELS = sorted(p.stem for p in (SQL_DIR / "quarantine").glob("*.sql"))


def _chains(tree: exp.Expression) -> list[exp.Expression]:
    """Every outermost ``a || b || …`` expression (each CASE branch's on its own)."""
    found = []
    for node in tree.find_all(exp.DPipe):
        parent = node.parent
        while isinstance(parent, exp.Paren):
            parent = parent.parent
        if not isinstance(parent, exp.DPipe):
            found.append(node)
    return found


def _all_null(chain: exp.Expression) -> str:
    """The expression with every column NULL and every $placeholder a value."""

    def fill(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column):
            return exp.Null()
        if isinstance(node, exp.Placeholder):
            return exp.Literal.string(f"<{node.name}>")
        return node

    return chain.copy().transform(fill).sql(dialect=SOURCE_DIALECT)


def test_every_quarantine_model_is_checked() -> None:
    assert len(MODELS) >= 10 and "civicrm_activity" in MODELS


def _null_texts(tree: exp.Expression) -> list[str]:
    con = duckdb.connect()
    null_texts = []
    for chain in _chains(tree):
        (value,) = con.execute(f"SELECT {_all_null(chain)}").fetchone()
        if value is None:
            null_texts.append(chain.sql(dialect=SOURCE_DIALECT)[:160])
        else:
            assert isinstance(value, str) and value.strip(), value
    return null_texts


@pytest.mark.parametrize("model", MODELS)
def test_no_reason_is_null_when_the_values_it_names_are(model: str) -> None:
    null_texts = _null_texts(_parse(f"quarantine/{model}"))
    assert not null_texts, f"{model}.sql builds reasons that are NULL when a value is:\n" + (
        "\n".join(null_texts)
    )


def test_the_check_finds_null_reasons_in_the_models_as_written() -> None:
    """Without the rewrite, the reason of issue #19 (a deleted case's NULL case type) and
    others are NULL: the check above is not vacuous."""
    text = (SQL_DIR / "quarantine" / "civicrm_activity.sql").read_text(encoding="utf-8")
    written = _null_texts(sqlglot.parse_one(text, read=SOURCE_DIALECT))
    assert any("case_type" in t for t in written), written
    (value,) = (
        duckdb.connect()
        .execute(f"SELECT {_all_null(_chains(_parse('quarantine/civicrm_activity'))[1])}")
        .fetchone()
    )
    assert BLANK in value
