"""Raw loads for members who send spreadsheets, one partition per member."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dlt import DagsterDltResource

from connectors.errors import PermanentSourceError
from pipelines.lib.hub import HubResource
from pipelines.lib.member_status import lift_load_hold, records_load_failures
from pipelines.lib.members import MEMBERS, member_to_load
from pipelines.lib.raw_assets import full_reload, raw_specs, run_source, selected

RAW_TABLES = {
    "spreadsheet__person": "People as the member's spreadsheet lists them (typed, one row each).",
    "spreadsheet__programme": "Programmes declared in the member's YAML, with outcome areas.",
    "spreadsheet__engagement": "Enrolments in programmes, with the member's own status labels.",
    "spreadsheet__service_delivery": "Sessions or other units of help delivered.",
    "spreadsheet__outcome": "Outcomes measured, with the member's own outcome labels.",
}


@dg.multi_asset(
    name="spreadsheet_raw",
    specs=raw_specs(RAW_TABLES, {"dlt", "duckdb"}),
    partitions_def=MEMBERS,
    can_subset=True,
    pool="warehouse",
)
@records_load_failures
def spreadsheet_raw(
    context: dg.AssetExecutionContext, hub: HubResource, dlt_resource: DagsterDltResource
) -> Iterator[Any]:
    """Load the member's changed spreadsheets into raw_<org>; unchanged files are skipped."""
    from connectors.spreadsheets import changed_tables, raw_pipeline, spreadsheet_source
    from connectors.spreadsheets.reading import matching_files

    member = member_to_load(context, hub, "spreadsheet")
    if member is None:
        return
    settings = hub.settings()
    location = member.location
    remote = location is not None and location.remote
    if remote:
        # Files at an S3/GCS/Azure location are read from the hub's copy: bring it up to date
        # (the file sensor may have fetched them already; only changed files are fetched).
        from connectors.spreadsheets.remote import cache_root, sync_location

        try:
            sync_location(member, cache_root(settings.home))
        except PermanentSourceError as err:
            raise dg.Failure(description=str(err), allow_retries=False) from err
    pipeline = raw_pipeline(member, hub.warehouse().dlt_destination(), settings.pipelines_dir)
    try:
        with hub.warehouse().exclusive():  # dlt reads its state back from the warehouse
            changed = changed_tables(member, pipeline, full=full_reload(context))
    except PermanentSourceError as err:
        raise dg.Failure(description=str(err), allow_retries=False) from err
    wanted = selected(context, changed)
    unchanged = sorted(
        t
        for t in RAW_TABLES
        if t not in changed and dg.AssetKey(["raw", t]) in context.selected_asset_keys
    )
    if unchanged:
        context.log.info(f"{member.org_id}: unchanged since the last load, skipped: {unchanged}")
    if not wanted:
        lift_load_hold(context, hub)
        return
    paths = {
        path
        for entity, table in member.connector.tables.items()
        if f"spreadsheet__{entity}" in wanted
        for path in matching_files(member.resolve(table.file))
    }
    # Lineage names the files where the member keeps them, not the hub's copy.
    files = sorted(
        location.url(path.relative_to(member.files_dir).as_posix())
        if remote and location is not None
        else str(path)
        for path in paths
    )
    yield from run_source(
        context,
        hub,
        dlt_resource,
        source=spreadsheet_source(member).with_resources(*wanted),
        pipeline=pipeline,
        dataset=member.raw_dataset,
        inputs=files,
        member=member,
    )
