"""Is a process still alive? Used to tell a crashed run or writer from a live one.

Plain Python (no Dagster), so the release writer and the run-recovery code share it.
"""

from __future__ import annotations

import os
from pathlib import Path

# A process that started this long after the thing it is said to own cannot be its owner.
_PID_REUSE_SLACK_SECONDS = 5.0


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def process_alive(pid: int, not_started_after: float | None = None) -> bool:
    """Whether ``pid`` is a live process that may have existed at ``not_started_after``.

    On Linux a zombie (killed, not yet reaped by its parent) counts as dead, and so does a
    process that started after ``not_started_after`` (the pid was reused). Elsewhere only
    existence is checked.
    """
    if pid <= 0:
        return False
    stat_file = Path(f"/proc/{pid}/stat")
    if stat_file.parent.parent.joinpath("self").exists():
        try:
            # The command name (field 2) may hold spaces; fields after its ')' are fixed.
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return False
        state, start_ticks = fields[0], int(fields[19])
        if state in ("Z", "X"):
            return False
        boot = _boot_time()
        if not_started_after is not None and boot is not None:
            started = boot + start_ticks / os.sysconf("SC_CLK_TCK")
            if started > not_started_after + _PID_REUSE_SLACK_SECONDS:
                return False
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
