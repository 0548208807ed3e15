"""Column-level lineage of a SQL model, computed with ``sqlglot.lineage``.

Why: open-source Dagster records ``dagster/column_lineage`` but does not draw it, and a
release's readers have no Dagster at all. Each release's ``lineage.json`` therefore carries,
for every column the hub's SQL produces, the warehouse columns it is computed from, so a
question about one published figure can be traced to the source columns behind it.

Columns are traced through CTEs, subqueries, joins, ``UNION ALL`` branches, aggregates,
``CASE`` and window functions. A value computed only from the rows of a table, not from any
column of it (``COUNT(*)``), derives from ``schema.table.*`` for each table those rows come
from. Literals (``'all' AS area``) contribute no source column.
"""

from __future__ import annotations

from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.lineage import Node, lineage

from transforms.errors import TransformError


def _table_name(table: exp.Table) -> str:
    return ".".join(part for part in (table.catalog, table.db, table.name) if part)


def _cte_map(tree: exp.Expression) -> dict[str, exp.Expression]:
    return {cte.alias_or_name: cte.this for cte in tree.find_all(exp.CTE)}


def _row_sources(
    query: exp.Expression, ctes: dict[str, exp.Expression], seen: frozenset[str] = frozenset()
) -> set[str]:
    """Base tables whose rows feed ``query``'s FROM and JOINs, following CTEs and subqueries."""
    if isinstance(query, exp.SetOperation):
        return _row_sources(query.left, ctes, seen) | _row_sources(query.right, ctes, seen)
    if isinstance(query, exp.Subquery):
        return _row_sources(query.this, ctes, seen)
    if not isinstance(query, exp.Select):
        return set()
    found: set[str] = set()
    froms: list[exp.Expression] = []
    if query.args.get("from_") is not None:
        froms.append(query.args["from_"].this)
    elif query.args.get("from") is not None:  # older sqlglot spelling
        froms.append(query.args["from"].this)
    froms.extend(join.this for join in query.args.get("joins") or [])
    for source in froms:
        if isinstance(source, exp.Table):
            name = source.name
            if not source.db and name in ctes and name not in seen:
                found |= _row_sources(ctes[name], ctes, seen | {name})
            elif source.db or name not in ctes:
                found.add(_table_name(source))
        elif isinstance(source, exp.Subquery):
            found |= _row_sources(source.this, ctes, seen)
    return found


def _leaf_columns(node: Node, ctes: dict[str, exp.Expression]) -> set[str]:
    out: set[str] = set()
    for n in node.walk():
        if n.downstream:
            continue
        if isinstance(n.expression, exp.Table):
            column = n.name.split(".")[-1].strip('"`')
            out.add(f"{_table_name(n.expression)}.{column}")
        elif n.expression.find(exp.Star) is not None and n.source is not None:
            out |= {f"{t}.*" for t in _row_sources(n.source, ctes)}
    return out


def column_lineage(
    sql: str, *, dialect: str = "duckdb", schema: dict[str, Any] | None = None
) -> dict[str, list[str]]:
    """Map each output column of a SELECT to the sorted ``schema.table.column`` it derives from.

    ``schema`` (sqlglot's nested ``{schema: {table: {column: type}}}`` form) is needed only
    to expand ``SELECT *`` over warehouse tables and to resolve unqualified columns in joins;
    without it such a star stays a single ``*`` output. Raises ``TransformError`` if the text
    is not one parseable query.
    """
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except SqlglotError as err:
        raise TransformError(f"cannot parse SQL for column lineage: {err}") from err
    if not isinstance(tree, exp.Query):
        raise TransformError("column lineage needs a SELECT query")
    try:
        nodes = lineage(None, tree, schema=schema or {}, dialect=dialect)
    except SqlglotError as err:
        raise TransformError(f"cannot compute column lineage: {err}") from err
    assert isinstance(nodes, dict)
    ctes = _cte_map(tree)
    return {column: sorted(_leaf_columns(node, ctes)) for column, node in nodes.items()}
