"""Declarative automation shared by the hub's assets."""

from __future__ import annotations

import dagster as dg


def downstream_of_any_update() -> dg.AutomationCondition:
    """Eager, but not held back by upstream partitions that were never loaded.

    A member with no outcome file, or one whose file is broken, leaves some raw partitions
    missing; the rest of the network must still refresh when another member's data arrives.
    """
    return dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())
