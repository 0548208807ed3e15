"""Deletions the CiviCRM connector holds back, read from the member's pipeline state.

When CiviCRM stops listing more of a table's records than ``max_deleted_share`` allows (or
lists none), the connector marks none of them deleted: a lost permission or ACL looks the
same as a mass deletion (see ``_guard`` in source.py). It keeps the number in its dlt
state until a run sees them again or a person raises the share. A log line on one run is
easy to miss, so `hub check` and the `hub run` summary read that state and say it, with the
fix. Counts only: no id or name is ever kept there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# dlt resource-state keys written by source.py.
HELD = "held_deletions"
HELD_PARENTS = "held_parent_deletions"
# A pipeline state file is a few kilobytes to a few megabytes (id ranges); a bigger one is
# not read whole just to print a summary line.
MAX_STATE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class HeldDeletions:
    """One table's records that CiviCRM no longer lists but the hub keeps."""

    table: str
    count: int
    since: str | None
    by_parent: bool  # rows kept because their contacts are no longer listed

    def describe(self) -> str:
        what = (
            f"{self.count} rows of contacts no longer listed"
            if self.by_parent
            else f"{self.count} records no longer listed"
        )
        when = f" since {self.since[:10]}" if self.since else ""
        return f"{self.table}: {what}{when}, kept (not marked deleted)"


FIX = (
    "CiviCRM stopped listing more records than connector.max_deleted_share allows, which a "
    "lost permission or ACL also causes. Check the API user's permissions first; if the "
    "records were deleted on purpose, set connector.max_deleted_share: 1 for one run."
)


def state_path(pipelines_dir: Path, org_id: str) -> Path:
    """Where dlt keeps the member's CiviCRM pipeline state (see connectors/raw_pipeline.py)."""
    from connectors.civicrm.source import SOURCE_NAME

    return Path(pipelines_dir) / f"hub_{org_id}_{SOURCE_NAME}" / "state.json"


def civicrm_members(pipelines_dir: Path) -> list[str]:
    """The members with a CiviCRM pipeline in ``pipelines_dir`` (from the folder names)."""
    from connectors.civicrm.source import SOURCE_NAME

    suffix = f"_{SOURCE_NAME}"
    folders = Path(pipelines_dir).glob(f"hub_*{suffix}") if Path(pipelines_dir).is_dir() else []
    return sorted(p.name[len("hub_") : -len(suffix)] for p in folders if p.is_dir())


def held_in_state(state: dict[str, Any]) -> list[HeldDeletions]:
    """The held-back deletions recorded in a pipeline state, by table."""
    found = []
    for source in (state.get("sources") or {}).values():
        for table, resource in sorted((source.get("resources") or {}).items()):
            for key, by_parent in ((HELD, False), (HELD_PARENTS, True)):
                count = resource.get(key)
                if isinstance(count, int) and count > 0:
                    since = resource.get(f"{key}_since")
                    found.append(HeldDeletions(table, count, since, by_parent))
    return found


def held_deletions(pipelines_dir: Path, org_id: str) -> list[HeldDeletions]:
    """What the member's last CiviCRM load held back ([] before its first load)."""
    path = state_path(pipelines_dir, org_id)
    try:
        if path.stat().st_size > MAX_STATE_BYTES:
            return []
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return held_in_state(state) if isinstance(state, dict) else []
