"""Event-driven loads, decided from each sensor's cursor.

``member_files`` keeps the member partitions in step with the member files and loads a member
whose file is added, fixed or edited; ``spreadsheet_changed`` loads a spreadsheet member whose
data files' content changes (in its folder or at its remote location). Downstream assets
follow by declarative automation.
"""

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dagster as dg

from connectors.members import SpreadsheetConnector
from pipelines.defs.ingest.loads import LOADS, load_request
from pipelines.lib.hub import HubResource
from pipelines.lib.members import (
    MEMBERS,
    loadable_members,
    member_file_stamps,
    partition_changes,
)

if TYPE_CHECKING:
    from connectors.spreadsheets.content import FileState

PERSON_LINK = dg.AssetKey(["hub", "person_link"])


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
    """Request one load of each spreadsheet member whose files' content changed.

    Content, not modification times: a file opened and saved unchanged, or touched by a sync
    tool, requests nothing; an edit requests one run, and so do a new file matching a
    table's pattern and a file removed (the load drops its rows). Each file's stamp decides
    whether it is hashed again (connectors/spreadsheets/watch.py); a remote location's
    changed files are copied into the hub's cache as they are hashed. The run key is the
    member's change count and content hash, so a tick replayed after a daemon crash launches
    nothing twice while the same content coming back later is a new run.

    A member seen for the first time is only watched from then on: its first load is the
    ``member_files`` sensor's. A location that cannot be listed this tick changes nothing.
    """
    # Imported here: the spreadsheet package loads dlt, and definitions must load fast.
    from connectors.errors import SpreadsheetError
    from connectors.spreadsheets.content import states_digest
    from connectors.spreadsheets.remote import OutOfTime, SyncBusy, cache_root
    from connectors.spreadsheets.watch import member_states

    known = _read_cursor(context.cursor)
    members = hub.registry()
    cache = cache_root(hub.settings().home)
    partitions = set(context.instance.get_dynamic_partitions(MEMBERS.name))
    deadline = time.monotonic() + TICK_BUDGET_SECONDS
    # A member whose file is invalid keeps what was seen of its files until it is fixed.
    cursor = {org: entry for org, entry in known.items() if org in members.errors}
    first_seen, waiting, unread, requests = [], [], [], []
    watched = 0
    for org, member in sorted(members.members.items()):
        if not isinstance(member.connector, SpreadsheetConnector):
            continue
        watched += 1
        before = known.get(org)
        try:
            states = member_states(member, before.files if before else {}, cache, deadline=deadline)
        except Exception as err:  # one member's files never stop the others' tick
            unread.append(org)
            # A SpreadsheetError names the location and the fix (never a credential); of
            # anything else only the type is logged, as its text may quote a key.
            why = str(err) if isinstance(err, SpreadsheetError | SyncBusy | OutOfTime) else ""
            context.log.warning(
                f"{org}: files not looked at this tick ({type(err).__name__}) {why}".rstrip()
            )
            if before is not None:
                cursor[org] = before
            continue
        digest = states_digest(states)
        if before is None:
            first_seen.append(org)
            cursor[org] = _Seen(states, digest, seq=int(time.time()))
        elif digest == before.digest:  # unchanged, or only touched: new stamps, no run
            cursor[org] = _Seen(states, digest, before.seq)
        elif org not in partitions:  # the member_files sensor adds it; ask again later
            waiting.append(org)
            cursor[org] = _Seen(states, before.digest, before.seq)
        else:
            seq = before.seq + 1
            requests.append(
                load_request(
                    org, "spreadsheet", run_key=f"{org}:files:{seq}:{digest}", trigger="file"
                )
            )
            cursor[org] = _Seen(states, digest, seq)
    text = _write_cursor(cursor)
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=text)
    reason = f"no member spreadsheet changed ({watched} members watched)"
    if first_seen:
        reason += f"; now watching {', '.join(first_seen)} (first loads come from member_files)"
    if waiting:
        reason += f"; changed but waiting for a partition: {', '.join(waiting)}"
    if unread:
        reason += f"; files not looked at this tick (see the log): {', '.join(unread)}"
    return dg.SensorResult(skip_reason=reason, cursor=text)


# A tick copies remote files until this many seconds have passed, then finishes the rest on
# later ticks: the daemon gives a sensor evaluation 60 seconds.
TICK_BUDGET_SECONDS = 40
_CURSOR_VERSION = 2


@dataclass(frozen=True)
class _Seen:
    """What the file sensor last saw of one member."""

    files: "dict[str, FileState]"  # file -> stamp and content hash
    digest: str  # of every file's name and content
    seq: int  # counts the member's changes, so content coming back is a new run key


def _read_cursor(text: str | None) -> dict[str, _Seen]:
    """The cursor's members; an older cursor (stamps only) counts as nothing seen."""
    from connectors.spreadsheets.content import FileState

    raw = json.loads(text) if text else {}
    if not isinstance(raw, dict) or raw.get("v") != _CURSOR_VERSION:
        return {}
    seen: dict[str, _Seen] = {}
    for org, entry in raw.get("members", {}).items():
        files = {k: FileState.from_json(v) for k, v in entry.get("files", {}).items()}
        seen[org] = _Seen(
            {k: v for k, v in files.items() if v is not None}, entry["digest"], entry["seq"]
        )
    return seen


def _write_cursor(seen: dict[str, _Seen]) -> str:
    members = {
        org: {
            "digest": entry.digest,
            "seq": entry.seq,
            "files": {k: v.to_json() for k, v in sorted(entry.files.items())},
        }
        for org, entry in sorted(seen.items())
    }
    return json.dumps({"v": _CURSOR_VERSION, "members": members}, sort_keys=True)
