"""Declarative automation: a member's new raw load rebuilds that member, then the network."""

from __future__ import annotations

import dagster as dg
import pytest

from pipelines.definitions import defs
from pipelines.lib.members import MEMBERS


def _requested(result: dg.EvaluateAutomationConditionsResult, key: dg.AssetKey) -> set:
    return set(result.get_requested_partitions(key))


@pytest.mark.slow
def test_a_raw_load_triggers_only_that_members_partition_then_downstream() -> None:
    definitions = defs()
    instance = dg.DagsterInstance.ephemeral()
    # Member partitions live in the instance (the member_files sensor adds them).
    members = ["alpha", "beta", "bridge"]
    instance.add_dynamic_partitions(MEMBERS.name, members)
    first = dg.evaluate_automation_conditions(defs=definitions, instance=instance)
    cursor = first.cursor
    # Nothing new has arrived: a second evaluation requests nothing.
    idle = dg.evaluate_automation_conditions(defs=definitions, instance=instance, cursor=cursor)
    assert idle.total_requested == 0
    org = members[0]
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=["raw", "spreadsheet__person"], partition=org)
    )
    after = dg.evaluate_automation_conditions(
        defs=definitions, instance=instance, cursor=idle.cursor
    )
    assert _requested(after, dg.AssetKey(["canonical", "person"])) == {org}
    assert _requested(after, dg.AssetKey(["quarantine", "rejected_rows"])) == {org}
    assert _requested(after, dg.AssetKey(["canonical", "engagement"])) == {org}
    # Linkage and publication follow once the canonical rebuild has happened.
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=["canonical", "person"], partition=org)
    )
    later = dg.evaluate_automation_conditions(
        defs=definitions, instance=instance, cursor=after.cursor
    )
    assert _requested(later, dg.AssetKey(["hub", "person_link"])) == {None}
    assert _requested(later, dg.AssetKey(["canonical", "person"])) == set()
    # Every connector's raw assets share the member partitions: a CRM member's load rebuilds
    # its own canonical partition, though it has no spreadsheet partitions loaded.
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=["raw", "civicrm__contact"], partition="bridge")
    )
    crm = dg.evaluate_automation_conditions(
        defs=definitions, instance=instance, cursor=later.cursor
    )
    assert _requested(crm, dg.AssetKey(["canonical", "person"])) == {"bridge"}
    # A member added while the definitions stay loaded is a partition like the others.
    instance.add_dynamic_partitions(MEMBERS.name, ["gamma"])
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key=["raw", "spreadsheet__person"], partition="gamma")
    )
    added = dg.evaluate_automation_conditions(
        defs=definitions, instance=instance, cursor=crm.cursor
    )
    assert _requested(added, dg.AssetKey(["canonical", "person"])) == {"gamma"}
