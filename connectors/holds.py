"""Holds: a connector's word that a member's load, though it ran, must not be taken.

Some loads end without an error yet with less than the truth: CiviCRM stops listing most
records (a lost permission reads as a mass deletion), Salesforce's daily API allocation runs
out halfway through. Writing what such a load brought would publish a member with half its
people, or delete people who still exist; failing before writing would lose the progress
the next run resumes from. So the connector writes what is safe (never the deletions it
doubts), records a *hold* in its dlt resource state, and the load asset, once the load is
committed, fails the member's load with the hold's reason and fix: the member is held back
(exit code, run summary, release), its last good canonical data stays, and no mapping runs
until a later load lifts every hold. A hold lives in the same state as the cursor it
protects, so it is committed (or not) with the load that set it, survives a crash, and is
lifted by the run that proves it wrong.

Holds hold counts and table names only: never an id, a name or a value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# dlt resource-state key: {hold name: {"reason": str, "fix": str, "since": ISO datetime}}.
HOLDS = "holds"
# A pipeline state file is kilobytes to a few megabytes (cursors, id ranges); a bigger one is
# not read whole just to say whether a member is held.
MAX_STATE_BYTES = 64 * 1024 * 1024
MAX_TEXT = 600


@dataclass(frozen=True)
class SourceHold:
    """One reason a member's latest load is not taken, on one table."""

    table: str
    name: str
    reason: str
    fix: str
    since: str | None

    def describe(self) -> str:
        """One line for a person: which table, what happened, since when."""
        when = f" (since {self.since[:16].replace('T', ' ')} UTC)" if self.since else ""
        return f"{self.table}: {self.reason}{when}"


def _text(value: str) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def hold(state: dict[str, Any], name: str, reason: str, fix: str) -> None:
    """Put (or keep) hold ``name`` on the resource whose dlt ``state`` this is.

    ``since`` stays at the first run that set it, so a person sees how long it has lasted.
    """
    holds = state.setdefault(HOLDS, {})
    since = (holds.get(name) or {}).get("since") or datetime.now(UTC).isoformat(timespec="seconds")
    holds[name] = {"reason": _text(reason), "fix": _text(fix), "since": since}


def lift(state: dict[str, Any], name: str) -> bool:
    """Lift hold ``name``; returns whether it was on."""
    holds = state.get(HOLDS)
    if not isinstance(holds, dict) or name not in holds:
        return False
    del holds[name]
    if not holds:
        del state[HOLDS]
    return True


def is_held(state: Mapping[str, Any]) -> bool:
    """Whether the resource whose dlt ``state`` this is has any hold on."""
    return bool(state.get(HOLDS))


def holds_in_state(state: Mapping[str, Any]) -> list[SourceHold]:
    """Every hold in a dlt pipeline state (all sources, all resources), by table."""
    found: list[SourceHold] = []
    sources = state.get("sources") if isinstance(state, Mapping) else None
    for source in (sources or {}).values():
        resources = source.get("resources") if isinstance(source, Mapping) else None
        for table, resource in sorted((resources or {}).items()):
            holds = resource.get(HOLDS) if isinstance(resource, Mapping) else None
            if not isinstance(holds, Mapping):
                continue
            for name, item in sorted(holds.items()):
                if isinstance(item, Mapping):
                    found.append(
                        SourceHold(
                            table=str(table),
                            name=str(name),
                            reason=str(item.get("reason") or "the load was held"),
                            fix=str(item.get("fix") or ""),
                            since=item.get("since") if isinstance(item.get("since"), str) else None,
                        )
                    )
    return found


def state_file(pipelines_dir: Path | str, org_id: str, source_name: str) -> Path:
    """Where dlt keeps a member's pipeline state (see connectors/raw_pipeline.py)."""
    return Path(pipelines_dir) / f"hub_{org_id}_{source_name}" / "state.json"


def member_holds(
    pipelines_dir: Path | str, org_id: str, source_names: Iterable[str]
) -> list[SourceHold]:
    """The holds in the member's committed pipeline states ([] before its first load).

    An unreadable or oversized state is not a hold: the load that reads it will fail with
    its own clear error.
    """
    found: list[SourceHold] = []
    for source_name in source_names:
        path = state_file(pipelines_dir, org_id, source_name)
        try:
            if path.stat().st_size > MAX_STATE_BYTES:
                continue
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(state, dict):
            found.extend(holds_in_state(state))
    return found


def held_message(org_id: str, holds: list[SourceHold]) -> str:
    """The held-back reason a person reads in the run summary and the UI.

    Fix first, then the first hold: a stored reason is cut at a few hundred characters, and
    `hub check` lists every hold in full.
    """
    ordered = sorted(holds, key=lambda h: (h.name, h.table))
    fixes = list(dict.fromkeys(h.fix for h in ordered if h.fix))
    fix = f" Fix: {' '.join(fixes)}" if fixes else ""
    more = len(ordered) - 1
    rest = f"; and {more} more table(s): `hub check {org_id}` lists them" if more else ""
    return f"its load ran but is held, not taken.{fix} Held: {ordered[0].describe()}{rest}"
