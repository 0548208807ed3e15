"""What the CLI says after a run: what loaded, what was set aside, where the release is."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text

from pipelines.lib.runner import StageResult
from pipelines.settings import HubSettings


def _query(settings: HubSettings, sql: str) -> list[tuple]:
    import duckdb

    if not settings.warehouse_path.exists():
        return []
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    except duckdb.CatalogException:
        return []
    finally:
        con.close()


def render_summary(results: Sequence[StageResult], settings: HubSettings) -> Group:
    """A readable end-of-run report (counts and reasons only: no personal data)."""
    parts: list = []
    failed = [r for r in results if not r.success]
    members = Table(title="Members")
    for col in (
        "member",
        "people",
        "engagements",
        "deliveries",
        "outcomes",
        "rejected rows",
        "values dropped",
        "non-data rows",
    ):
        members.add_column(col, justify="right" if col != "member" else "left")
    rows = _query(
        settings,
        """
        SELECT m.org_id,
          (SELECT COUNT(*) FROM canonical.person p WHERE p.org_id = m.org_id),
          (SELECT COUNT(*) FROM canonical.engagement e WHERE e.org_id = m.org_id),
          (SELECT COUNT(*) FROM canonical.service_delivery d WHERE d.org_id = m.org_id),
          (SELECT COUNT(*) FROM canonical.outcome o WHERE o.org_id = m.org_id),
          (SELECT COUNT(*) FROM quarantine.rejected_rows q
             WHERE q.org_id = m.org_id AND q.severity = 'error'),
          (SELECT COUNT(*) FROM quarantine.rejected_rows q
             WHERE q.org_id = m.org_id AND q.severity = 'warning'),
          (SELECT COUNT(*) FROM quarantine.rejected_rows q
             WHERE q.org_id = m.org_id AND q.severity = 'skipped')
        FROM hub.member m ORDER BY m.org_id""",
    )
    for row in rows:
        members.add_row(*(str(v) for v in row))
    parts.append(members)
    people = _query(settings, "SELECT COUNT(*), COUNT(DISTINCT person_key) FROM hub.person_link")
    cross = _query(
        settings,
        "SELECT COUNT(*) FROM (SELECT person_key FROM hub.person_link "
        "GROUP BY person_key HAVING COUNT(DISTINCT org_id) > 1) s",
    )
    if people:
        parts.append(
            Text(
                f"People: {people[0][0]} records linked into {people[0][1]} people; "
                f"{cross[0][0]} are served by more than one member."
            )
        )
    reasons = _query(
        settings,
        """
        SELECT org_id, severity, source_file, source_row, column_name, reason
        FROM quarantine.rejected_rows
        ORDER BY org_id, CASE severity WHEN 'error' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
                 source_file, source_row""",
    )
    if reasons:
        table = Table(title="Quarantine (fix these in the member's file or YAML)")
        for col in ("member", "severity", "file", "row", "column", "reason"):
            table.add_column(col)
        for row in reasons[:40]:
            table.add_row(*("" if v is None else str(v) for v in row))
        parts.append(table)
        if len(reasons) > 40:
            parts.append(Text(f"… and {len(reasons) - 40} more in quarantine.rejected_rows"))
    latest = settings.releases_dir / "LATEST"
    if latest.exists():
        version = latest.read_text(encoding="utf-8").strip()
        folder = settings.releases_dir / version
        parts.append(
            Text(
                f"Release {version}: {folder}\n  open {folder / 'index.html'} to "
                "browse it; datapackage.json describes every file.",
                style="bold",
            )
        )
    parts.append(Text(f"Warehouse: {settings.warehouse_path}"))
    if failed:
        parts.append(Text("\n".join(f"✗ {r.name}: {r.error}" for r in failed), style="red"))
    else:
        parts.append(Text("All stages succeeded.", style="green"))
    return Group(*parts)
