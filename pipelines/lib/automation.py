"""Declarative automation shared by the hub's assets."""

from __future__ import annotations

import dagster as dg


def downstream_of_any_update() -> dg.AutomationCondition:
    """Eager, but not held back by upstream partitions that were never loaded, and not blind
    to an upstream update made by a run that also selected this asset but skipped it.

    A member with no outcome file, or one whose file is broken, leaves some raw partitions
    missing; the rest of the network must still refresh when another member's data arrives.

    A member's load run also selects its canonical partition (pipelines/defs/ingest/loads.py),
    and Dagster skips that mapping step when the load left a table it reads unmaterialised (a
    spreadsheet that did not change, a Salesforce load of just the records an event named).
    Dagster's own ``any_deps_updated`` ignores updates made by a run that selected the target
    (``executed_with_root_target``), so the member's change would never be mapped; this one
    counts them. Nothing is mapped twice: when the mapping did run, it materialised after the
    load, and ``since_last_handled`` lets the later of the two win.
    """
    deps_updated = dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.newly_updated() | dg.AutomationCondition.will_be_requested()
    ).with_label("any_deps_updated")
    return (
        dg.AutomationCondition.in_latest_time_window()
        & (dg.AutomationCondition.newly_missing() | deps_updated).since_last_handled()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label("eager (counting updates from runs that skipped this asset)")
