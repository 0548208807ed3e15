"""Load SQL models written once (DuckDB dialect) and transpile them with sqlglot.

Models live in ``transforms/sql/**.sql``. They may use two kinds of template slot, both
resolved on the parsed tree rather than by string formatting, so values are always quoted
correctly for the target dialect:

- ``$name`` placeholders become string literals (``$org_id``);
- the schema ``raw`` is a stand-in for one member's raw dataset (``raw_<org_id>``);
- columns named ``cfg__<role>`` stand for a column the member's config names (a CRM field
  whose API name the member chooses, e.g. its consent field); ``columns`` maps each role to
  the raw column, or to None when the member has no such field (the slot becomes NULL).

In the quarantine models (``quarantine/*``) every value joined into text with ``||`` is
NULL-safe: a NULL operand reads ``(blank)`` instead of making the whole text NULL. Their
texts are the reasons members read, and ``rejected_rows.reason`` is NOT NULL, so one record
with a blank field (or a deletion marker, or a missing join) would otherwise fail the
member's whole mapping stage on every run (issue #19). tests/transforms/
test_quarantine_reasons.py evaluates every such text with all its columns NULL.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path

import sqlglot
from sqlglot import exp

from transforms.errors import TransformError

SQL_DIR = Path(__file__).parent / "sql"
SOURCE_DIALECT = "duckdb"
CONFIGURED_PREFIX = "cfg__"


BLANK = "(blank)"


def null_safe_text(tree: exp.Expression) -> exp.Expression:
    """``a || b`` with every operand that is not a string literal as ``COALESCE(x, BLANK)``."""

    def wrap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.DPipe):
            for side in ("this", "expression"):
                operand = node.args.get(side)
                if operand is None or isinstance(operand, exp.DPipe):
                    continue
                if isinstance(operand, exp.Literal) and operand.is_string:
                    continue
                text = exp.cast(operand.copy(), exp.DataType.build("text"))
                node.set(side, exp.func("COALESCE", text, exp.Literal.string(BLANK)))
        return node

    return tree.transform(wrap)


@cache
def _parse(name: str) -> exp.Expression:
    path = SQL_DIR / f"{name}.sql"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise TransformError(f"no SQL model {name} (looked for {path})") from err
    try:
        tree = sqlglot.parse_one(text, read=SOURCE_DIALECT)
    except sqlglot.errors.ParseError as err:
        raise TransformError(f"{name}.sql is not valid {SOURCE_DIALECT} SQL: {err}") from err
    return null_safe_text(tree) if name.startswith("quarantine/") else tree


def render(
    name: str,
    *,
    dialect: str = SOURCE_DIALECT,
    params: Mapping[str, str] | None = None,
    raw_schema: str | None = None,
    tables: Mapping[str, str] | None = None,
    columns: Mapping[str, str | None] | None = None,
) -> str:
    """Return model ``name`` with placeholders filled, transpiled to ``dialect``."""
    return render_tree(
        _parse(name),
        dialect=dialect,
        params=params,
        raw_schema=raw_schema,
        tables=tables,
        columns=columns,
        name=name,
    )


def render_tree(
    tree: exp.Expression,
    *,
    dialect: str,
    params: Mapping[str, str] | None = None,
    raw_schema: str | None = None,
    tables: Mapping[str, str] | None = None,
    columns: Mapping[str, str | None] | None = None,
    name: str = "<sql>",
) -> str:
    """Fill placeholders and rename tables in a parsed statement, then generate SQL.

    ``tables`` renames ``schema.table`` references (applied first); ``raw_schema`` then
    replaces the ``raw`` stand-in schema; ``columns`` fills ``cfg__<role>`` column slots.
    """
    params = params or {}
    tables = tables or {}
    columns = columns or {}

    def fill(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and node.name.startswith(CONFIGURED_PREFIX):
            role = node.name[len(CONFIGURED_PREFIX) :]
            if role not in columns:
                raise TransformError(f"{name}: column slot {node.name} has no value")
            target = columns[role]
            if target is None:
                return exp.Null()
            return exp.column(target, table=node.table or None)
        if isinstance(node, exp.Placeholder):
            key = node.name
            if key not in params:
                raise TransformError(f"{name}: placeholder ${key} has no value")
            return exp.Literal.string(str(params[key]))
        if isinstance(node, exp.Table) and node.db:
            db, table = node.db, node.name
            renamed = tables.get(f"{db}.{table}")
            if renamed:
                db, table = renamed.split(".", 1)
            if raw_schema and db == "raw":
                db = raw_schema
            if (db, table) != (node.db, node.name):
                return exp.table_(table, db=db, alias=node.alias or None)
        return node

    return tree.copy().transform(fill).sql(dialect=dialect, pretty=True)


def upstream_tables(name: str, tables: Mapping[str, str] | None = None) -> set[tuple[str, str]]:
    """(schema, table) pairs a model reads, CTE names excluded; ``raw`` stays ``raw``."""
    tree = _parse(name)
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    found = {f"{t.db}.{t.name}" for t in tree.find_all(exp.Table) if t.name not in ctes and t.db}
    renamed = {(tables or {}).get(ref, ref) for ref in found}
    return {tuple(ref.split(".", 1)) for ref in renamed}  # type: ignore[misc]


def raw_columns(
    name: str,
    tables: Mapping[str, str] | None = None,
    columns: Mapping[str, str | None] | None = None,
) -> dict[str, set[str]]:
    """Columns a model reads from each ``raw`` table (qualified references, slots filled).

    Resolved scope by scope, so an alias reused for a CTE is not mistaken for the table.
    """
    from sqlglot.optimizer.scope import traverse_scope

    tables = tables or {}
    columns = columns or {}
    found: dict[str, set[str]] = {}
    for scope in traverse_scope(_parse(name)):
        for column in scope.columns:
            source = scope.sources.get(column.table)
            if not isinstance(source, exp.Table) or not source.db:
                continue
            ref = tables.get(f"{source.db}.{source.name}", f"{source.db}.{source.name}")
            db, table = ref.split(".", 1)
            if db != "raw":
                continue
            col = column.name
            if col.startswith(CONFIGURED_PREFIX):
                col = columns.get(col[len(CONFIGURED_PREFIX) :]) or ""
            if col and col != "*":
                found.setdefault(table, set()).add(col)
    return found


def output_columns(name: str) -> list[str]:
    """Names of the columns a SELECT model produces, in order."""
    tree = _parse(name)
    if not isinstance(tree, exp.Query):
        raise TransformError(f"{name}.sql is not a query")
    return list(tree.named_selects)


def render_script(name: str, *, dialect: str = SOURCE_DIALECT) -> list[str]:
    """Every statement of a multi-statement file (DDL), transpiled to ``dialect``."""
    text = (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")
    try:
        return [s.sql(dialect=dialect) for s in sqlglot.parse(text, read=SOURCE_DIALECT) if s]
    except sqlglot.errors.ParseError as err:
        raise TransformError(f"{name}.sql is not valid {SOURCE_DIALECT} SQL: {err}") from err


def model_names(folder: str) -> list[str]:
    """Names (``folder/stem``) of the SQL models in one folder, sorted."""
    return sorted(f"{folder}/{p.stem}" for p in (SQL_DIR / folder).glob("*.sql"))


def sql_text(name: str) -> str:
    """The model's source text, as written (for lineage and documentation)."""
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")
