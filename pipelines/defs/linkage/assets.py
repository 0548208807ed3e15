"""Deduplication: every canonical person record mapped to a hub person key."""

import dagster as dg

from pipelines.lib.automation import downstream_of_any_update
from pipelines.lib.hub import HubResource


@dg.asset(
    key=["hub", "person_link"],
    group_name="linkage",
    kinds={"splink", "duckdb"},
    deps=[dg.AssetKey(["canonical", "person"])],
    automation_condition=downstream_of_any_update(),
    pool="warehouse",
)
def person_link(context: dg.AssetExecutionContext, hub: HubResource) -> dg.MaterializeResult:
    """One hub person key per canonical person record; keys are stable across runs.

    Deterministic rules, then a Splink model (DuckDB), guards for the hard cases, reviewer
    decisions, and consent: records without it link only within their own member. Only the
    people that new, changed or deleted records touch are re-linked, unless a full run is
    due (the metadata says which, and why).
    """
    from transforms.canonical import remove_members_not_in
    from transforms.linkage import link_people

    registry = hub.registry()
    # A member whose file was deleted has left the network: its rows leave with it. A member
    # whose file is merely invalid keeps its last good data until the file is fixed.
    removed = remove_members_not_in(hub.warehouse(), [*registry.members, *registry.errors])
    if removed:
        context.log.warning(f"members no longer configured, their data removed: {removed}")
    with hub.lineage(context, inputs=["canonical.person"], outputs=["hub.person_link"]):
        result = link_people(hub.warehouse())
    # A blocking rule over the candidate-pair budget was tightened or skipped: some pairs
    # were never compared, so the operator must hear of it (sizes only, no personal data).
    for warning in result.blocking_warnings:
        context.log.warning(warning.message())
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": result.records,
            "records": result.records,
            "people": result.people,
            "cross_member_people": result.cross_member_people,
            "review_queue": result.review_queue,
            "model_version": result.model_version,
            "model": result.model,
            "key_changes": result.key_changes,
            "mode": result.mode,
            "why": result.reason,
            "changed_records": result.changed_records,
            "deleted_records": result.deleted_records,
            "relinked_records": result.relinked_records,
            "members_removed": ", ".join(removed) or "none",
            "blocking_warnings": len(result.blocking_warnings),
            "blocking_budget": dg.MetadataValue.json(
                [w.as_dict() for w in result.blocking_warnings]
            ),
        }
    )
