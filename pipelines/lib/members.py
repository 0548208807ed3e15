"""Member partitions: one dynamic partition per member organisation, kept in the instance.

Definitions never read the member files (the daemon reloads them often, and a new member
must not wait for a reload). The partitions live in the Dagster instance and follow the
files: ``sync_member_partitions`` for `hub run`, the ``member_files`` sensor for the daemon.

Every partitioned asset (each connector kind's raw load and the canonical model) shares the
one definition ``MEMBERS``, so a member's raw partitions map onto its canonical partition key
for key. Per-kind definitions would keep other kinds' members out of each raw asset, but
then the canonical model's partitions would depend on raw partitions that do not exist, and
Dagster refuses to backfill those; instead a raw asset asked to load a member of another kind
loads nothing (``member_to_load``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import dagster as dg

from connectors.members import LOADED_CONNECTOR_KINDS, Member, MemberRegistry, load_members
from pipelines.lib.hub import HubResource
from pipelines.settings import HubSettings

MEMBERS = dg.DynamicPartitionsDefinition(name="members")
"""One partition per member organisation whose data the hub loads."""


def registry() -> MemberRegistry:
    """Every member file in HUB_MEMBERS_DIR, read now."""
    return load_members(HubSettings.from_env().members_dir)


def loadable_members(members: MemberRegistry) -> dict[str, str]:
    """Valid members whose data the hub loads, with their connector kind."""
    return {
        org: m.connector.kind
        for org, m in sorted(members.members.items())
        if m.connector.kind in LOADED_CONNECTOR_KINDS
    }


def partition_changes(
    existing: Iterable[str], members: MemberRegistry
) -> tuple[list[str], list[str]]:
    """Partitions to add and to delete so they match ``members``.

    A member whose file is invalid keeps its partition (its last good data stays until the
    file is fixed); a member whose file is gone, or whose connector the hub does not load,
    loses it.
    """
    existing = set(existing)
    wanted = set(loadable_members(members))
    return sorted(wanted - existing), sorted(existing - wanted - set(members.errors))


def sync_member_partitions(
    instance: dg.DagsterInstance, members: MemberRegistry
) -> tuple[list[str], list[str]]:
    """Add and delete the instance's member partitions to match ``members``; (added, removed)."""
    added, removed = partition_changes(instance.get_dynamic_partitions(MEMBERS.name), members)
    if added:
        instance.add_dynamic_partitions(MEMBERS.name, added)
    for org in removed:
        instance.delete_dynamic_partition(MEMBERS.name, org)
    return added, removed


def member_file_stamps(directory: Path) -> dict[str, str]:
    """Per member file (valid or not), a stamp of its size and modification time."""
    stamps: dict[str, str] = {}
    if not directory.is_dir():
        return stamps
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        if path.name.startswith(("_", ".")):
            continue
        try:
            stat = path.stat()
        except OSError:  # deleted while we looked
            continue
        stamps[path.stem] = f"{stat.st_size}-{stat.st_mtime_ns}"
    return stamps


def member_to_load(context: dg.AssetExecutionContext, hub: HubResource, kind: str) -> Member | None:
    """The partition's member, or None (logged) when its data comes through another connector.

    All raw assets share the member partitions, so a backfill of one connector's raw asset
    over every partition reaches members of other kinds: for them there is nothing to load.
    """
    member = hub.member(context.partition_key)
    if member.connector.kind != kind:
        context.log.info(
            f"{member.org_id} is a {member.connector.kind} member: nothing to load here"
        )
        return None
    return member
