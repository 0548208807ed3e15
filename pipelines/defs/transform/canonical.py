"""The canonical model and quarantine, rebuilt one member (partition) at a time."""

from collections.abc import Iterator

import dagster as dg

from pipelines.lib.automation import downstream_of_any_update
from pipelines.lib.hub import HubResource
from pipelines.lib.member_status import held_back_on_failure, record_current, refuse_held_load
from pipelines.lib.members import MEMBERS
from transforms import sql
from transforms.canonical import CANONICAL_TABLES, MODELS_BY_CONNECTOR, build_member

DESCRIPTIONS = {
    "person": "A person as one member knows them (personal data; never published).",
    "programme": "Programmes and service lines, each tied to a shared outcome area.",
    "engagement": "A person's enrolment in a programme, status normalised.",
    "service_delivery": "One unit of help delivered.",
    "outcome": "A measured outcome for a person, coded with the shared taxonomy.",
}


def _raw_deps(target: str) -> list[dg.AssetDep]:
    """Raw assets a canonical table reads, found by parsing each connector's SQL models.

    Raw and canonical assets share the member partitions: partition maps to partition.
    """
    deps: dict[dg.AssetKey, dg.AssetDep] = {}
    for models in MODELS_BY_CONNECTOR.values():
        for model in models:
            if model.target != target:
                continue
            for schema, table in sql.upstream_tables(model.name, model.tables):
                if schema == "raw" and not table.endswith("_quarantine"):
                    key = dg.AssetKey(["raw", table])
                    deps[key] = dg.AssetDep(key)
    return list(deps.values())


@dg.multi_asset(
    name="canonical_model",
    specs=[
        *(
            dg.AssetSpec(
                ["canonical", table],
                description=DESCRIPTIONS[table],
                group_name="canonical",
                kinds={"sql", "duckdb"},
                deps=_raw_deps(f"canonical.{table}"),
                automation_condition=downstream_of_any_update(),
            )
            for table in CANONICAL_TABLES
        ),
        dg.AssetSpec(
            ["quarantine", "rejected_rows"],
            description="Rows not taken as they came, with file, row, column, reason and fix.",
            group_name="canonical",
            kinds={"sql", "duckdb"},
            deps=_raw_deps("quarantine.rejected_rows"),
            automation_condition=downstream_of_any_update(),
        ),
    ],
    partitions_def=MEMBERS,
    pool="warehouse",
)
def canonical_model(
    context: dg.AssetExecutionContext, hub: HubResource
) -> Iterator[dg.MaterializeResult]:
    """Map the member's raw rows onto the canonical model; set aside what does not map.

    On failure the member's last good rows stay and it is recorded as held back. So they
    stay while the member's last load is held by its source (connectors/holds.py): under
    automation this step may be asked to map a load that committed and then failed."""
    refuse_held_load(context, hub)
    with held_back_on_failure(context, hub, "mapping"):
        member = hub.member(context.partition_key)
        models = MODELS_BY_CONNECTOR.get(member.connector.kind, [])
        inputs = sorted(
            {
                f"{member.raw_dataset if schema == 'raw' else schema}.{table}"
                for model in models
                for schema, table in sql.upstream_tables(model.name, model.tables)
            }
        )
        outputs = sorted({model.target for model in models})
        with hub.lineage(context, inputs=inputs, outputs=outputs):
            build = build_member(hub.warehouse(), member)
    record_current(context, hub)
    if build.skipped_models:
        context.log.info(f"{member.org_id}: no raw data yet for {build.skipped_models}")
    for table in CANONICAL_TABLES:
        yield dg.MaterializeResult(
            asset_key=["canonical", table],
            metadata={"dagster/row_count": build.rows[table], "org_id": member.org_id},
        )
    yield dg.MaterializeResult(
        asset_key=["quarantine", "rejected_rows"],
        metadata={
            "dagster/row_count": sum(build.quarantined.values()),
            "rejected": build.quarantined.get("error", 0),
            "values_dropped": build.quarantined.get("warning", 0),
            "skipped_non_data_rows": build.quarantined.get("skipped", 0),
        },
    )
