"""The receiver's view of the member files: loaded on first use, reloaded when they change.

Why: members join and leave while the receiver runs; a new member file must work without a
restart, and an edited one (a rotated secret, a new Outbound Message token) at once. Each
request costs a few ``stat`` calls: the member's file, the members folder (a new member
beside it can change which environment variables this one may name) and any key file its
event secrets live in. Only when one of those changed is the file loaded and validated again
(in a worker thread: it reads YAML and checks the member's files).

Only names matching the member id pattern are ever looked up, so a request path can never
point the receiver at a file outside the members folder.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from connectors.errors import MemberConfigError
from connectors.members import ORG_ID_PATTERN, Member, event_secret_refs, load_member
from connectors.taxonomy import Taxonomy, load_taxonomy
from events.doors import Doors, resolve_doors

Fingerprint = tuple[tuple[int, int, int] | None, ...]


def _stat(path: Path | str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@dataclass(frozen=True)
class Entry:
    """One member as last loaded: the member and its doors, or why it does not load."""

    path: str
    member: Member | None
    doors: Doors | None
    error: str | None
    fingerprint: Fingerprint
    secret_files: tuple[Path, ...]


class MemberDirectory:
    """Member files in one folder, each loaded when first asked for and again on change."""

    def __init__(self, members_dir: Path, taxonomy: Taxonomy | None = None) -> None:
        self.members_dir = Path(members_dir)
        self._dir = str(self.members_dir)
        self._taxonomy = taxonomy
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()

    def member_file(self, org_id: str) -> Path | None:
        """The member's YAML file, or None if there is none (or the id cannot be one)."""
        if not ORG_ID_PATTERN.match(org_id):
            return None
        found = None
        for suffix in (".yaml", ".yml"):  # as load_members: a .yml beside a .yaml wins
            path = self.members_dir / f"{org_id}{suffix}"
            if os.path.isfile(path):
                found = path
        return found

    def _fingerprint(self, path: Path | str, secret_files: tuple[Path, ...]) -> Fingerprint:
        # The folder's own mtime moves when a file in it is added, removed or renamed (a
        # .yml appearing beside the .yaml, an editor saving by rename), so two stat calls
        # cover the member file and its neighbours.
        return (_stat(path), _stat(self._dir), *(_stat(p) for p in secret_files))

    def cached(self, org_id: str) -> Entry | None:
        """The entry if it is still current (cheap: stat calls only), else None."""
        entry = self._entries.get(org_id)
        if entry is None:
            return None
        if entry.doors is not None and entry.doors.problems:
            return None  # a secret not exported yet may be by now: read it again
        if self._fingerprint(entry.path, entry.secret_files) != entry.fingerprint:
            return None
        return entry

    def load(self, org_id: str) -> Entry | None:
        """Load (or reload) one member; None if it has no file. Blocking: run in a thread."""
        path = self.member_file(org_id)
        if path is None:
            with self._lock:
                self._entries.pop(org_id, None)
            return None
        if self._taxonomy is None:
            self._taxonomy = load_taxonomy()
        # Fingerprint first: a change while loading makes the next request load again.
        before = self._fingerprint(path, ())
        try:
            member = load_member(path, self._taxonomy)
        except MemberConfigError as err:
            entry = Entry(str(path), None, None, f"{len(err.problems)} problem(s)", before, ())
        else:
            secret_files = tuple(
                ref._path(org_id) for _, ref in event_secret_refs(member.events) if ref.file
            )
            fingerprint = (*before, *(_stat(p) for p in secret_files))
            entry = Entry(str(path), member, resolve_doors(member), None, fingerprint, secret_files)
        with self._lock:
            self._entries[org_id] = entry
        return entry
