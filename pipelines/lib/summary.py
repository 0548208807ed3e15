"""What the CLI says after a run: what loaded, what was set aside, where the release is."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group
from rich.text import Text

from pipelines.lib.runner import StageResult
from pipelines.settings import HubSettings

MAX_REASONS = 40

# `hub run` exit codes (2: usage error, such as an unknown member; 4: the home is busy).
EXIT_OK = 0  # every member current, and a release written
EXIT_HELD_BACK = 1  # a release written, but some member held back (or a step failed)
EXIT_NO_RELEASE = 3  # no release written: publishing failed, or nothing to publish


def _query(settings: HubSettings, sql: str) -> list[tuple]:
    import duckdb

    from transforms.warehouse import DuckDBWarehouse

    if not settings.warehouse_path.exists():
        return []
    try:
        with DuckDBWarehouse(settings.warehouse_path).connect(read_only=True) as session:
            return session.fetchall(sql)
    except duckdb.CatalogException:
        return []


def held_back(settings: HubSettings) -> list[tuple]:
    """(org_id, last good load, stage, failed at, reason) of every held-back member."""
    return _query(
        settings,
        "SELECT org_id, last_good_load, stage, failed_at, reason FROM hub.member_status "
        "WHERE status = 'held_back' ORDER BY org_id",
    )


def exit_code(results: Sequence[StageResult], settings: HubSettings) -> int:
    """0, 1 or 3: see ``EXIT_*`` (and `hub run --help`)."""
    if not any(r.released for r in results):
        return EXIT_NO_RELEASE
    if held_back(settings) or not all(r.success for r in results):
        return EXIT_HELD_BACK
    return EXIT_OK


def _when(value: object) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value is not None else "never"


def render_summary(results: Sequence[StageResult], settings: HubSettings) -> Group:
    """A readable end-of-run report (counts and reasons only: no personal data).

    Counts are of records the member still has: a deleted record stays in canonical (its
    id and ``is_deleted``, so the deletion reaches every table) but is nobody.
    """
    parts: list = []
    failed = [r for r in results if not r.success]
    rows = _query(
        settings,
        """
        SELECT m.org_id,
          (SELECT COUNT(*) FROM canonical.person p
             WHERE p.org_id = m.org_id AND NOT COALESCE(p.is_deleted, FALSE)),
          (SELECT COUNT(*) FROM canonical.engagement e
             WHERE e.org_id = m.org_id AND NOT COALESCE(e.is_deleted, FALSE)),
          (SELECT COUNT(*) FROM canonical.service_delivery d
             WHERE d.org_id = m.org_id AND NOT COALESCE(d.is_deleted, FALSE)),
          (SELECT COUNT(*) FROM canonical.outcome o
             WHERE o.org_id = m.org_id AND NOT COALESCE(o.is_deleted, FALSE)),
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
    stale = held_back(settings)
    if stale:
        parts.append(
            Text(
                "Held back — the latest data of these members could not be taken; the release "
                "counts their last good data and says so:",
                style="bold yellow",
            )
        )
        for org_id, last_good, stage, failed_at, reason in stale:
            parts.append(
                Text(
                    f"  ! {org_id}: last good load {_when(last_good)}; its {stage} failed "
                    f"{_when(failed_at)}: {reason}",
                    style="yellow",
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
    if latest.exists() and any(r.released for r in results):
        version = latest.read_text(encoding="utf-8").strip()
        folder = settings.releases_dir / version
        parts.append(
            Text(
                f"Release {version}: {folder}\n  open {folder / 'index.html'} to "
                "browse it; datapackage.json describes every file.",
                style="bold",
            )
        )
    else:
        before = latest.read_text(encoding="utf-8").strip() if latest.exists() else None
        parts.append(
            Text(
                "No release was written by this run"
                + (f"; the latest is still {before}." if before else "."),
                style="bold red",
            )
        )
    parts.append(Text(f"Warehouse: {settings.warehouse_path}"))
    if failed:
        parts.append(Text("\n".join(f"✗ {r.name}: {r.error}" for r in failed), style="red"))
    else:
        parts.append(Text("All stages succeeded.", style="green"))
    return Group(*parts)
