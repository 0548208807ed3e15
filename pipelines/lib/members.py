"""Member partitions, read from the member files when definitions load.

Reading a local folder at load time is the one I/O definitions do: partitions must be known
to draw the asset graph. No network, no secrets: credentials are resolved only in runs.
"""

from __future__ import annotations

from functools import cache

import dagster as dg

from connectors.members import LOADED_CONNECTOR_KINDS, MemberRegistry, load_members
from pipelines.settings import HubSettings


@cache
def registry() -> MemberRegistry:
    """Members found when the code location loaded (reload the location to pick up new ones)."""
    return load_members(HubSettings.from_env().members_dir)


def member_ids(kind: str | None = None) -> list[str]:
    """Valid members whose data the hub loads, optionally only those of one connector kind."""
    return sorted(
        org
        for org, m in registry().members.items()
        if m.connector.kind in LOADED_CONNECTOR_KINDS and kind in (None, m.connector.kind)
    )


MEMBERS = dg.StaticPartitionsDefinition(member_ids())
"""One partition per member organisation: the canonical model is built member by member."""


def members_of(kind: str) -> dg.StaticPartitionsDefinition:
    """Partitions for the raw assets of one connector kind."""
    return dg.StaticPartitionsDefinition(member_ids(kind))


def same_member(kind: str) -> dg.StaticPartitionMapping:
    """Map a connector's raw partitions onto the all-members partitions, key for key."""
    return dg.StaticPartitionMapping({org: org for org in member_ids(kind)})
