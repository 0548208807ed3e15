"""Event-driven loads: a member's spreadsheet changing on disk starts that member's load."""

import json

import dagster as dg

from connectors.members import SpreadsheetConnector
from pipelines.defs.ingest.spreadsheets import spreadsheet_raw
from pipelines.lib.hub import HubResource


def _file_stamps(hub: HubResource) -> dict[str, str]:
    """Per spreadsheet member, a stamp of its files' sizes and modification times."""
    stamps: dict[str, str] = {}
    for org_id, member in hub.registry().members.items():
        if not isinstance(member.connector, SpreadsheetConnector):
            continue
        parts = []
        for name, table in sorted(member.connector.tables.items()):
            path = member.resolve(table.file)
            try:
                stat = path.stat()
                parts.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}")
            except OSError:
                parts.append(f"{name}:missing")
        stamps[org_id] = "|".join(parts)
    return stamps


@dg.sensor(
    target=spreadsheet_raw,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def spreadsheet_changed(context: dg.SensorEvaluationContext, hub: HubResource) -> dg.SensorResult:
    """Request a load of each member whose spreadsheet files changed since the last tick.

    The load itself compares content fingerprints, so a file touched but not changed costs
    one quick run that loads nothing; downstream assets follow by declarative automation.
    """
    known: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    current = _file_stamps(hub)
    partitions = set(spreadsheet_raw.partitions_def.get_partition_keys())  # type: ignore[union-attr]
    changed = [org for org, stamp in sorted(current.items()) if known.get(org) != stamp]
    new = [org for org in changed if org not in partitions]
    if new:
        context.log.warning(
            f"member file(s) added since the code location loaded: {new}; reload the code "
            "location (Deployment → Reload) so they get partitions"
        )
    requests = [
        dg.RunRequest(
            run_key=f"{org}:{current[org]}", partition_key=org, tags={"hub/trigger": "file"}
        )
        for org in changed
        if org in partitions
    ]
    if not requests:
        return dg.SensorResult(
            skip_reason="no member spreadsheet changed", cursor=json.dumps(current)
        )
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(current))
