"""One writer per hub home: a second ``hub run`` or ``hub demo`` on the same home waits or
refuses, naming the process that holds it.

The lock is an OS file lock (``filelock``) on ``<home>/hub.lock``: the kernel releases it when
its process ends, however it ends, so a run killed with SIGKILL never leaves the home locked.
Beside it, ``hub.lock.json`` says who holds it (pid, start time), for the refusal message.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_NAME = "hub.lock"
OWNER_NAME = "hub.lock.json"


class HomeBusyError(RuntimeError):
    """Another hub process holds the home."""


def _owner(home: Path) -> str:
    try:
        owner = json.loads((home / OWNER_NAME).read_text(encoding="utf-8"))
        return f"pid {int(owner['pid'])}, started {owner['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown"


@contextmanager
def hold_home(home: Path, *, wait_seconds: float = 0, command: str = "hub run") -> Iterator[None]:
    """Hold ``home`` for the duration of the block.

    With ``wait_seconds`` 0 a busy home is refused at once; otherwise the call waits that long
    for the other process to finish. Raises :class:`HomeBusyError` naming the holder.
    """
    home.mkdir(parents=True, exist_ok=True)
    # Kept on release: unlinking a flock'd file lets two processes hold two different files.
    lock = FileLock(home / LOCK_NAME, preserve_lock_file=True)
    try:
        lock.acquire(timeout=wait_seconds, blocking=wait_seconds != 0)
    except Timeout as err:
        waited = f" (waited {wait_seconds:g} s)" if wait_seconds else ""
        raise HomeBusyError(
            f"another hub run ({_owner(home)}) is using {home}{waited}. Wait for it to finish, "
            f"or run `{command} --wait SECONDS` to queue behind it."
        ) from err
    try:
        started = datetime.now(UTC).replace(microsecond=0).isoformat()
        (home / OWNER_NAME).write_text(
            json.dumps({"pid": os.getpid(), "started": started, "command": command}),
            encoding="utf-8",
        )
        yield
    finally:
        (home / OWNER_NAME).unlink(missing_ok=True)
        lock.release()
