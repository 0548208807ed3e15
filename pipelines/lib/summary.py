"""What the CLI says after a run: what loaded, what was set aside, where the release is."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group
from rich.text import Text

from pipelines.lib.runner import StageResult
from pipelines.settings import HubSettings

MAX_REASONS = 40


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
    parts.append(Text("Members", style="bold"))
    for org_id, people, engagements, deliveries, outcomes, rejected, dropped, skipped in rows:
        parts.append(
            Text(
                f"  {org_id}: {people} people, {engagements} engagements, {deliveries} "
                f"deliveries, {outcomes} outcomes; {rejected} rows rejected, {dropped} values "
                f"dropped, {skipped} non-data rows skipped"
            )
        )
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
        SELECT org_id, severity, source_file, source_row, source_id, column_name, reason
        FROM quarantine.rejected_rows
        ORDER BY org_id, CASE severity WHEN 'error' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,
                 source_file, source_row, source_id""",
    )
    if reasons:
        parts.append(
            Text(
                "Quarantine — fix these in the member's file or YAML "
                "(✗ row rejected, ! value dropped, · not a data row):",
                style="bold",
            )
        )
        marks = {"error": "✗", "warning": "!", "skipped": "·"}
        for org_id, severity, file, row, source_id, column, reason in reasons[:MAX_REASONS]:
            # A file row for spreadsheets; a record id for CRMs (field instead of column).
            where = f"{file or '?'} row {row}" if row is not None else f"{file} {source_id}"
            label = "column" if row is not None else "field"
            where += f", {label} '{column}'" if column else ""
            parts.append(Text(f"  {marks.get(severity, '?')} {org_id}: {where}: {reason}"))
        if len(reasons) > MAX_REASONS:
            parts.append(
                Text(f"  … and {len(reasons) - MAX_REASONS} more in quarantine.rejected_rows")
            )
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
