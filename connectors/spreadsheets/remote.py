"""Copy a member's files from its remote location (S3, GCS, Azure) into the hub's cache.

Why a copy: the reader, the size and workbook limits and the fingerprints all work on local
files (a workbook is a zip, read by seeking; a CSV's encoding is sniffed from its start), so
a remote file is first copied into the member's own cache folder,
``$HUB_HOME/cache/files/<org_id>/``, and read from there exactly as a local one. The copy is
made only when the remote file's stamp (size, modification time, ETag) moved since the last
copy, is hashed while it streams in, refused past ``HUB_MAX_FILE_BYTES``, and replaces the
old copy atomically. A manifest beside the copies keeps each one's stamp and hash, so the
file sensor and the load agree on what changed and nothing is fetched twice. A file gone
from the location goes from the cache too (the load then drops its rows, as for a local
file).
"""

from __future__ import annotations

import fnmatch
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from filelock import FileLock, Timeout

from connectors.errors import MemberConfigError, SpreadsheetError
from connectors.locations import Location, LocationError, open_location
from connectors.members import MAX_FILES_PER_TABLE, Member, is_glob
from connectors.spreadsheets.content import MISSING, FileState, stream_digest
from connectors.spreadsheets.limits import Limits

MANIFEST = ".manifest.json"
_STAMP_KEYS = ("mtime", "LastModified", "last_modified", "updated", "created", "generation")
_TAG_KEYS = ("ETag", "etag", "md5Hash", "version_id", "VersionId")


def cache_root(home: Path) -> Path:
    """Where remote members' copies live: one folder per member under it."""
    return home / "cache" / "files"


class SyncBusy(Exception):
    """Another process is copying this member's files now."""


class OutOfTime(Exception):
    """The caller's deadline passed before every changed file was copied."""


def _error(member: Member, where: str, problem: str, fix: str) -> SpreadsheetError:
    return SpreadsheetError(member.org_id, where, problem, fix)


def _stamp(info: dict[str, Any]) -> str:
    """size, modification time and tag of a listed file, as one string."""
    parts = [str(info.get("size"))]
    for keys in (_STAMP_KEYS, _TAG_KEYS):
        value = next((info[k] for k in keys if info.get(k) is not None), "")
        if isinstance(value, datetime):
            value = value.timestamp()
        parts.append(str(value))
    return ":".join(parts)


def _remote_files(member: Member, location: Location, fs: Any) -> dict[str, dict | None]:
    """Relative name -> listing entry of every file the tables name (None: not there).

    A pattern matches file names in its one folder (lock files ~$… and .… left out), at
    most one more than the per-table limit; a missing folder matches nothing.
    """
    found: dict[str, dict | None] = {}
    for table in member.connector.tables.values():
        rel = PurePosixPath(table.file.as_posix())
        if not is_glob(table.file):
            try:
                info = fs.info(location.path(str(rel)))
            except FileNotFoundError:
                info = None
            found[str(rel)] = info if info is None or info.get("type") == "file" else None
            continue
        folder = "" if str(rel.parent) == "." else str(rel.parent)
        try:
            entries = fs.ls(location.path(folder), detail=True)
        except FileNotFoundError:
            entries = []
        pattern = rel.name.replace("[", "[[]")
        matched = 0
        for entry in sorted(entries, key=lambda e: e["name"]):
            name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            if entry.get("type") != "file" or name.startswith(("~$", ".")):
                continue
            if fnmatch.fnmatchcase(name, pattern):
                found[str(PurePosixPath(folder) / name) if folder else name] = entry
                matched += 1
                if matched > MAX_FILES_PER_TABLE:
                    break
    return found


def _read_manifest(folder: Path) -> dict[str, FileState]:
    try:
        raw = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    states = {k: FileState.from_json(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
    return {k: v for k, v in states.items() if v is not None}


def _write_manifest(folder: Path, states: dict[str, FileState]) -> None:
    tmp = folder / f"{MANIFEST}.{os.getpid()}.part"
    tmp.write_text(
        json.dumps({k: v.to_json() for k, v in sorted(states.items())}), encoding="utf-8"
    )
    os.replace(tmp, folder / MANIFEST)


def _download(fs: Any, source: str, target: Path, limit: int) -> str:
    """Copy ``source`` to ``target`` (atomically), hashing as it streams; the hash."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with fs.open(source, "rb") as src, tmp.open("wb") as dst:

            class _Tee:
                def read(self, n: int) -> bytes:
                    chunk = src.read(n)
                    dst.write(chunk)
                    return chunk

            digest = stream_digest(_Tee(), limit)  # type: ignore[arg-type]
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return digest


@contextmanager
def _member_lock(root: Path, org_id: str, wait: float) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(root / f".{org_id}.lock"))
    try:
        lock.acquire(timeout=wait)
    except Timeout:
        raise SyncBusy(org_id) from None
    try:
        yield
    finally:
        lock.release()


def sync_location(
    member: Member,
    root: Path,
    *,
    strict: bool = True,
    deadline: float | None = None,
    wait: float = 600,
) -> dict[str, FileState]:
    """Bring the member's cache folder in step with its remote location; the files' states.

    Afterwards ``member`` reads from the copy (``member.resolve`` names cache files). With
    ``strict`` (a load, ``hub check``) a file that is missing, over the size limit or a
    pattern matching nothing raises SpreadsheetError naming the URL and the fix; without it
    (the file sensor) those are states like any other, so a change to them is seen. A
    location that cannot be listed raises either way (never read as "every file gone").
    Past ``deadline`` (time.monotonic) no further file is fetched: OutOfTime, and the
    next call goes on from what was copied. SyncBusy when another process holds the member's
    copy for longer than ``wait`` seconds.
    """
    location = member.location
    assert location is not None and location.remote, "only for a remote location"
    folder = root / member.org_id
    options = member.connector.location_options
    where = location.url()
    try:
        fs = open_location(location, options)
        with _member_lock(root, member.org_id, wait):
            folder.mkdir(parents=True, exist_ok=True)
            states = _sync(member, location, fs, folder, deadline)
    except (SyncBusy, OutOfTime):
        raise
    except LocationError as err:
        raise _error(member, where, err.problem, err.fix) from None
    except MemberConfigError as err:  # a credential's variable or key file is missing
        raise _error(
            member,
            where,
            "; ".join(err.problems),
            "export the variable (or put the key file in place) that "
            "connector.location_options names",
        ) from None
    except (PermissionError, FileNotFoundError) as err:
        what = "permission denied" if isinstance(err, PermissionError) else "not found"
        raise _error(
            member,
            where,
            f"the location cannot be read ({what})",
            "check the bucket and prefix in connector.location, and that the credentials "
            "(connector.location_options, or the hub's default ones) may list and read it",
        ) from None
    except Exception as err:  # network errors, and the backends' own (no credentials…)
        # Only the error's type: a backend's message may quote a key id or a signed URL.
        raise _error(
            member,
            where,
            f"the location cannot be reached ({type(err).__name__})",
            "check the network and the location; the hub tries again at its next check",
        ) from None
    member._cache_dir = folder.resolve()  # a private attribute: settable on a frozen model
    if strict:
        _raise_problems(member, location, states)
    return states


def _sync(
    member: Member, location: Location, fs: Any, folder: Path, deadline: float | None
) -> dict[str, FileState]:
    limit = Limits.from_env().file_bytes
    manifest = _read_manifest(folder)
    listing = _remote_files(member, location, fs)
    states: dict[str, FileState] = {}
    copied = dict(manifest)
    try:
        for rel, info in sorted(listing.items()):
            if info is None:
                states[rel] = FileState(MISSING, MISSING)
                continue
            stamp, size = _stamp(info), info.get("size")
            if isinstance(size, int) and size > limit:
                states[rel] = FileState(stamp, f"problem:over-limit:{size}")
                continue
            target = folder / rel
            old = manifest.get(rel)
            if (
                old is not None
                and old.stamp == stamp
                and target.is_file()
                and (not isinstance(size, int) or target.stat().st_size == size)
            ):
                states[rel] = old
                continue
            if deadline is not None and time.monotonic() > deadline:
                raise OutOfTime(f"{member.org_id}: copying its files takes more than a tick")
            try:
                states[rel] = FileState(stamp, _download(fs, location.path(rel), target, limit))
            except ValueError:  # grew past the limit while it streamed
                states[rel] = FileState(stamp, f"problem:over-limit:{limit}")
                continue
            copied[rel] = states[rel]
    finally:
        # Even when stopped part way, the manifest says what the cache now holds.
        _write_manifest(folder, {k: v for k, v in copied.items() if (folder / k).is_file()})
    # Copies of files no longer at the location (or no longer readable) go.
    keep = {rel for rel, s in states.items() if not s.digest.startswith(("problem:", MISSING))}
    for rel in manifest:
        if rel not in keep:
            (folder / rel).unlink(missing_ok=True)
    _write_manifest(folder, {k: v for k, v in states.items() if k in keep})
    return states


def _raise_problems(member: Member, location: Location, states: dict[str, FileState]) -> None:
    for entity, table in member.connector.tables.items():
        rel = table.file.as_posix()
        key = f"connector.tables.{entity}.file in {member.config_path.name}"
        if is_glob(table.file):
            name = PurePosixPath(rel).name.replace("[", "[[]")
            parent = str(PurePosixPath(rel).parent)
            matched = [
                k
                for k in states
                if str(PurePosixPath(k).parent) == parent
                and fnmatch.fnmatchcase(PurePosixPath(k).name, name)
            ]
            if not matched:
                raise _error(
                    member,
                    location.url(rel),
                    f"{entity} table: no file at {location.url(parent if parent != '.' else '')}"
                    f" matches '{PurePosixPath(rel).name}'",
                    f"put the files there, or correct the pattern in {key}",
                )
            if len(matched) > MAX_FILES_PER_TABLE:
                raise _error(
                    member,
                    location.url(rel),
                    f"{entity} table: the pattern matches over {MAX_FILES_PER_TABLE} files",
                    f"move old exports elsewhere, or narrow the pattern in {key}",
                )
            files = matched
        else:
            files = [rel]
        for name in files:
            state = states.get(name)
            if state is None or state.digest == MISSING:
                raise _error(
                    member,
                    location.url(name),
                    f"{entity} table: file not found",
                    f"put the file at {location.url(name)}, or correct {key} (names are "
                    "relative to connector.location)",
                )
            if state.digest.startswith("problem:over-limit"):
                raise _error(
                    member,
                    location.url(name),
                    f"{entity} table: the file is over the size limit of "
                    f"{Limits.from_env().file_bytes:,} bytes",
                    "the hub checks member files against limits before reading them (README: "
                    "limits for member files)",
                )
