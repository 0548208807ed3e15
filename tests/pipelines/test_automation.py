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


def _toy(condition: dg.AutomationCondition) -> dg.Definitions:
    """An upstream multi-asset that may skip an output, and a downstream that reads both."""

    @dg.multi_asset(
        specs=[dg.AssetSpec("up_a", skippable=True), dg.AssetSpec("up_b", skippable=True)],
        can_subset=True,
        # Which outputs a run yields; the others are skipped, as an unchanged table is.
        config_schema={"produce": dg.Field([str], default_value=["up_a", "up_b"])},
    )
    def ups(context):  # unannotated: Dagster refuses a string annotation here
        for key in context.selected_asset_keys:
            if key.path[-1] in context.op_execution_context.op_config["produce"]:
                yield dg.MaterializeResult(asset_key=key)

    @dg.asset(deps=["up_a", "up_b"], automation_condition=condition)
    def down() -> None:
        return None

    return dg.Definitions(assets=[ups, down])


@pytest.mark.parametrize("ours", [True, False])
def test_a_load_run_that_skipped_the_mapping_still_gets_it_mapped(ours: bool) -> None:
    """A load run selects the member's mapping too; when the load leaves a table out, Dagster
    skips the mapping step, and automation must then map it (Dagster's stock eager condition
    does not: it ignores updates made by a run that selected the target). When the mapping
    did run, nothing is requested again."""
    from pipelines.lib.automation import downstream_of_any_update

    condition = downstream_of_any_update() if ours else dg.AutomationCondition.eager()
    definitions = _toy(condition)
    job = definitions.resolve_implicit_global_asset_job_def()
    instance = dg.DagsterInstance.ephemeral()
    everything = [dg.AssetKey("up_a"), dg.AssetKey("up_b"), dg.AssetKey("down")]
    job.execute_in_process(instance=instance, asset_selection=everything)
    cursor = dg.evaluate_automation_conditions(defs=definitions, instance=instance).cursor
    # Mapped in the same run: nothing more to do.
    mapped = dg.evaluate_automation_conditions(defs=definitions, instance=instance, cursor=cursor)
    assert mapped.total_requested == 0
    # A load of up_a only: the mapping step is skipped for want of up_b.
    run = job.execute_in_process(
        instance=instance,
        asset_selection=everything,
        run_config={"ops": {"ups": {"config": {"produce": ["up_a"]}}}},
    )
    assert run.dagster_run.asset_selection == set(everything)
    assert [m.asset_key for m in run.get_asset_materialization_events()] == [dg.AssetKey("up_a")]
    after = dg.evaluate_automation_conditions(
        defs=definitions, instance=instance, cursor=mapped.cursor
    )
    assert _requested(after, dg.AssetKey("down")) == ({None} if ours else set())
