"""Raw loads for members who send spreadsheets, one partition per member."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dlt import DagsterDltResource

from connectors.errors import PermanentSourceError
from pipelines.lib.dlt_translator import RawTranslator
from pipelines.lib.errors import as_failure
from pipelines.lib.hub import HubResource
from pipelines.lib.members import members_of

SPREADSHEET_MEMBERS = members_of("spreadsheet")

RAW_TABLES = {
    "spreadsheet__person": "People as the member's spreadsheet lists them (typed, one row each).",
    "spreadsheet__programme": "Programmes declared in the member's YAML, with outcome areas.",
    "spreadsheet__engagement": "Enrolments in programmes, with the member's own status labels.",
    "spreadsheet__service_delivery": "Sessions or other units of help delivered.",
    "spreadsheet__outcome": "Outcomes measured, with the member's own outcome labels.",
}


@dg.multi_asset(
    name="spreadsheet_raw",
    specs=[
        dg.AssetSpec(
            ["raw", table],
            description=text,
            group_name="ingest",
            kinds={"dlt", "duckdb"},
            skippable=True,
        )
        for table, text in RAW_TABLES.items()
    ],
    partitions_def=SPREADSHEET_MEMBERS,
    can_subset=True,
    pool="warehouse",
)
def spreadsheet_raw(
    context: dg.AssetExecutionContext, hub: HubResource, dlt_resource: DagsterDltResource
) -> Iterator[Any]:
    """Load the member's changed spreadsheets into raw_<org>; unchanged files are skipped."""
    from connectors.spreadsheets import changed_tables, raw_pipeline, spreadsheet_source

    member = hub.member(context.partition_key)
    settings = hub.settings()
    pipeline = raw_pipeline(member, hub.warehouse().dlt_destination(), settings.pipelines_dir)
    try:
        changed = changed_tables(member, pipeline)
    except PermanentSourceError as err:
        raise dg.Failure(description=str(err), allow_retries=False) from err
    wanted = [t for t in changed if dg.AssetKey(["raw", t]) in context.selected_asset_keys]
    unchanged = sorted(
        t
        for t in RAW_TABLES
        if t not in changed and dg.AssetKey(["raw", t]) in context.selected_asset_keys
    )
    if unchanged:
        context.log.info(f"{member.org_id}: unchanged since the last load, skipped: {unchanged}")
    if not wanted:
        return
    source = spreadsheet_source(member).with_resources(*wanted)
    files = sorted(
        {
            str(member.resolve(table.file))
            for entity, table in member.connector.tables.items()
            if f"spreadsheet__{entity}" in wanted
        }
    )
    outputs = [f"{member.raw_dataset}.{t}" for t in wanted]
    try:
        with hub.lineage(context, inputs=files, outputs=outputs):
            yield from dlt_resource.run(
                context=context,
                dlt_source=source,
                dlt_pipeline=pipeline,
                dagster_dlt_translator=RawTranslator(),
            )
    except Exception as err:
        failure = as_failure(err)
        if failure is err:
            raise
        raise failure from err
