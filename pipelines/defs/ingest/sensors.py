"""Event-driven loads, decided from each sensor's cursor.

``member_files`` keeps the member partitions in step with the member files and loads a member
whose file is added, fixed or edited; ``spreadsheet_changed`` loads a spreadsheet member whose
data files change. Downstream assets follow by declarative automation.
"""

import json

import dagster as dg

from connectors.members import MemberRegistry, SpreadsheetConnector
from pipelines.defs.ingest.loads import LOADS, load_request
from pipelines.lib.hub import HubResource
from pipelines.lib.members import (
    MEMBERS,
    loadable_members,
    member_file_stamps,
    partition_changes,
)

PERSON_LINK = dg.AssetKey(["hub", "person_link"])


def _file_stamps(members: MemberRegistry) -> dict[str, str]:
    """Per spreadsheet member, a stamp of its files' sizes and modification times."""
    from pathlib import Path

    from connectors.spreadsheets.reading import matching_files

    stamps: dict[str, str] = {}
    for org_id, member in members.members.items():
        if not isinstance(member.connector, SpreadsheetConnector):
            continue
        parts = []
        for name, table in sorted(member.connector.tables.items()):
            # A pattern (sessions-*.csv) stamps each file it matches: a new month's export
            # is a change.
            for path in matching_files(member.resolve(table.file)) or [Path(table.file)]:
                try:
                    stat = path.stat()
                    parts.append(f"{name}:{path.name}:{stat.st_size}:{stat.st_mtime_ns}")
                except OSError:
                    parts.append(f"{name}:missing")
        stamps[org_id] = "|".join(parts)
    return stamps


@dg.sensor(
    target=LOADS | dg.AssetSelection.assets(PERSON_LINK),
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def member_files(context: dg.SensorEvaluationContext, hub: HubResource) -> dg.SensorResult:
    """Add a partition for each new member file and load it; drop a deleted member's partition.

    A member is loaded (its connector kind's raw assets) when its file appears, becomes valid
    again or is edited. A member whose file turns invalid keeps its partition and its last
    good data. A deleted member's partition goes, and people are re-linked without its rows.
    The cursor holds each member file's stamp and which members were loadable.
    """
    folder = hub.settings().members_dir
    if not folder.is_dir():  # unmounted or misconfigured: never read as "every member left"
        return dg.SensorResult(
            skip_reason=f"members folder {folder} not found (HUB_MEMBERS_DIR): "
            "member partitions left as they are",
            cursor=context.cursor,
        )
    previous = json.loads(context.cursor) if context.cursor else {}
    seen_files: dict[str, str] = previous.get("files", {})
    was_loadable = set(previous.get("loadable", []))
    members = hub.registry()
    files = member_file_stamps(folder)
    loadable = loadable_members(members)
    added, removed = partition_changes(
        context.instance.get_dynamic_partitions(MEMBERS.name), members
    )
    to_load = [
        org for org in loadable if org not in was_loadable or seen_files.get(org) != files.get(org)
    ]
    requests = [
        load_request(
            org, loadable[org], run_key=f"{org}:member-file:{files.get(org)}", trigger="member_file"
        )
        for org in to_load
    ]
    if removed:
        # The linkage asset removes members whose file is gone; publication follows.
        gone = "+".join(f"{org}@{seen_files.get(org, 'unseen')}" for org in removed)
        requests.append(
            dg.RunRequest(
                run_key=f"removed:{gone}",
                asset_selection=[PERSON_LINK],
                tags={"hub/trigger": "member_removed"},
            )
        )
    partition_requests: list[
        dg.AddDynamicPartitionsRequest | dg.DeleteDynamicPartitionsRequest
    ] = []
    if added:
        partition_requests.append(MEMBERS.build_add_request(added))
    if removed:
        partition_requests.append(MEMBERS.build_delete_request(removed))
    if members.errors:
        context.log.warning(
            f"member file(s) invalid, their partitions and last good data kept: "
            f"{sorted(members.errors)} (see `hub members`)"
        )
    cursor = json.dumps({"files": files, "loadable": sorted(loadable)}, sort_keys=True)
    if not requests and not partition_requests:
        return dg.SensorResult(
            skip_reason=f"no member file added, changed or removed ({len(loadable)} members "
            f"loadable, {len(members.errors)} invalid)",
            cursor=cursor,
        )
    return dg.SensorResult(
        run_requests=requests, dynamic_partitions_requests=partition_requests, cursor=cursor
    )


@dg.sensor(
    target=LOADS,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def spreadsheet_changed(context: dg.SensorEvaluationContext, hub: HubResource) -> dg.SensorResult:
    """Request a load of each spreadsheet member whose files changed since the last tick.

    A member seen for the first time is only watched from then on: its first load is the
    ``member_files`` sensor's. The load itself compares content fingerprints, so a file touched
    but not changed costs one quick run that loads nothing.
    """
    known: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    members = hub.registry()
    current = _file_stamps(members)
    partitions = set(context.instance.get_dynamic_partitions(MEMBERS.name))
    first_seen = [org for org in sorted(current) if org not in known]
    changed = [org for org in sorted(current) if org in known and known[org] != current[org]]
    # No partition yet (the member_files sensor adds it): ask again on a later tick.
    waiting = [org for org in changed if org not in partitions]
    cursor = {
        **{org: stamp for org, stamp in known.items() if org in members.errors},
        **current,
        **{org: known[org] for org in waiting},
    }
    requests = [
        load_request(org, "spreadsheet", run_key=f"{org}:{current[org]}", trigger="file")
        for org in changed
        if org not in waiting
    ]
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))
    reason = f"no member spreadsheet changed ({len(current)} members watched)"
    if first_seen:
        reason += f"; now watching {', '.join(first_seen)} (first loads come from member_files)"
    if waiting:
        reason += f"; changed but waiting for a partition: {', '.join(waiting)}"
    return dg.SensorResult(skip_reason=reason, cursor=json.dumps(cursor, sort_keys=True))
