"""The lineage record written with every release (``lineage.json``).

It ties each published table to the SQL models that computed it, the warehouse tables those
read, the dlt loads (per member) whose rows were in them, the Dagster run and the code
version, and, per column, the source columns it derives from — so a funder's question about
one figure can be followed back to the loads that produced it without Dagster+.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from transforms import sql
from transforms.warehouse import Session

# Published table -> the models that compute it, upstream first.
PUBLISHED_MODELS: dict[str, list[str]] = {
    "outcomes_summary": [
        "published/activity",
        "published/published_activity",
        "published/outcomes_summary",
    ],
    "cross_org_reach": [
        "published/activity",
        "published/published_activity",
        "published/cross_org_reach",
    ],
    "organisation_summary": ["published/organisation_summary"],
}
INTERMEDIATE = {("hub", "activity"), ("hub", "published_activity")}


def _loads(session: Session) -> dict[str, dict[str, list[str]]]:
    """dlt load ids behind the canonical rows, per member and canonical table."""
    out: dict[str, dict[str, list[str]]] = {}
    for table in ("person", "programme", "engagement", "service_delivery", "outcome"):
        for org_id, load_id in session.fetchall(
            f"SELECT DISTINCT org_id, _load_id FROM canonical.{table} "
            "WHERE _load_id IS NOT NULL ORDER BY 1, 2"
        ):
            out.setdefault(org_id, {}).setdefault(table, []).append(load_id)
    return out


def build_lineage(session: Session, *, run_id: str, code_version: str) -> dict[str, Any]:
    """Lineage for the current published tables, read from the warehouse they came from."""
    from transforms.column_lineage import column_lineage

    tables: dict[str, Any] = {}
    for name, models in PUBLISHED_MODELS.items():
        inputs = sorted(
            f"{schema}.{table}"
            for model in models
            for schema, table in sql.upstream_tables(model)
            if (schema, table) not in INTERMEDIATE
        )
        tables[name] = {
            "sql_models": [f"transforms/sql/{m}.sql" for m in models],
            "inputs": sorted(set(inputs)),
            # Models are written in DuckDB SQL whatever the warehouse; read them as such.
            "column_lineage": {m: column_lineage(sql.sql_text(m)) for m in models},
            "disclosure_control": True,
        }
    rows = session.fetchall("SELECT org_id, last_refreshed FROM hub.member ORDER BY org_id")
    refreshed = {org: str(ts) for org, ts in rows}
    return {
        "run_id": run_id,
        "code_version": code_version,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "tables": tables,
        "loads": _loads(session),
        "members_refreshed_at": refreshed,
    }
