"""What the file sensor sees of a spreadsheet member: each file's stamp and content hash.

A file whose stamp (size, modification time, inode) is as last seen keeps its last hash
without being read; any other is hashed again, streamed. A file that cannot be hashed (gone,
outside the member's folder, not a regular file, over the size limit, unreadable) gets a
state naming the problem instead, so a change into or out of it is still a change, and the
load reports the problem itself. A remote location's files are copied into the hub's cache
on the way (connectors/spreadsheets/remote.py), hashed as they arrive.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from pathlib import Path

from connectors.members import Member, other_member_ids
from connectors.scope import data_file_problem
from connectors.spreadsheets.content import MISSING, FileState, stream_digest
from connectors.spreadsheets.limits import Limits


def _hashed(state: FileState | None) -> bool:
    return state is not None and not state.digest.startswith(("problem:", MISSING))


def _local_state(
    member: Member,
    path: Path,
    before: FileState | None,
    others: tuple[str, ...],
    limit: int,
) -> FileState:
    try:
        info = path.stat()
    except FileNotFoundError:
        return FileState(MISSING, MISSING)
    except OSError as err:
        return FileState("unreadable", f"problem:stat:{err.errno}")
    stamp = f"{info.st_size}:{info.st_mtime_ns}:{info.st_ino}:{info.st_dev}"
    if _hashed(before) and before is not None and before.stamp == stamp:
        return before  # not read again: same size, time and file
    if data_file_problem(member.org_id, path, member.files_root, others):
        return FileState(stamp, "problem:outside-member-folder")
    if not stat.S_ISREG(info.st_mode):  # a pipe would block the tick, a device never end
        return FileState(stamp, "problem:not-a-regular-file")
    if info.st_size > limit:
        return FileState(stamp, "problem:over-limit")
    try:
        with path.open("rb") as handle:
            return FileState(stamp, stream_digest(handle, limit))
    except ValueError:  # grew past the limit while being read
        return FileState(stamp, "problem:over-limit")
    except OSError as err:
        return FileState(stamp, f"problem:open:{err.errno}")


def local_states(member: Member, before: Mapping[str, FileState]) -> dict[str, FileState]:
    """Absolute path -> state of every file the member's tables name (a pattern's matches,
    a named file even when missing); files whose stamp is unchanged are not read."""
    from connectors.spreadsheets.reading import matching_files

    others = other_member_ids(member.config_path)
    limit = Limits.from_env().file_bytes
    states: dict[str, FileState] = {}
    for table in member.connector.tables.values():
        for path in matching_files(member.resolve(table.file)):
            key = str(path)
            if key not in states:  # two sheets of one workbook are one file
                states[key] = _local_state(member, path, before.get(key), others, limit)
    return states


def member_states(
    member: Member,
    before: Mapping[str, FileState],
    cache: Path,
    *,
    deadline: float | None = None,
) -> dict[str, FileState]:
    """The states of the member's files, wherever they live.

    A remote location is listed and its changed files copied into ``cache`` (raises
    SpreadsheetError when the location cannot be listed, OutOfTime past ``deadline``,
    SyncBusy while a load is copying the same member's files).
    """
    location = member.location
    if location is not None and location.remote:
        from connectors.spreadsheets.remote import sync_location

        return sync_location(member, cache, strict=False, deadline=deadline, wait=5)
    return local_states(member, before)
