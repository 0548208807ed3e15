"""Raw loads for members on CiviCRM (APIv4 over REST), one partition per member."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dlt import DagsterDltResource

from connectors.errors import MemberConfigError
from connectors.members import CiviCRMConnector
from pipelines.lib.dlt_translator import RawTranslator
from pipelines.lib.errors import as_failure
from pipelines.lib.hub import HubResource
from pipelines.lib.members import members_of

CIVICRM_MEMBERS = members_of("civicrm")

RAW_TABLES = {
    "civicrm__contact": "Individuals, with trashed contacts flagged and hard deletes marked.",
    "civicrm__email": "E-mail addresses of the contacts (primary flag kept).",
    "civicrm__phone": "Phone numbers of the contacts (primary flag kept).",
    "civicrm__address": "Postal codes of the contacts (primary flag kept).",
    "civicrm__case": "Cases: a person's engagement with a programme (case type, status).",
    "civicrm__case_contact": "Which contacts each case is about.",
    "civicrm__activity": "Activities: help delivered, and outcomes from custom fields.",
    "civicrm__activity_contact": "Which contacts each activity targets, by record type.",
    "civicrm__contribution": "Contributions, loaded raw for later use.",
}


@dg.multi_asset(
    name="civicrm_raw",
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
    partitions_def=CIVICRM_MEMBERS,
    can_subset=True,
    pool="warehouse",
    # 5xx and timeouts are retried inside the client first; a run that still fails on a
    # transient fault is tried again later. Member-facing errors are never retried.
    retry_policy=dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL),
)
def civicrm_raw(
    context: dg.AssetExecutionContext, hub: HubResource, dlt_resource: DagsterDltResource
) -> Iterator[Any]:
    """Load the member's changed CiviCRM records into raw_<org> (incremental, merged on id)."""
    from connectors.civicrm import civicrm_source, raw_pipeline

    member = hub.member(context.partition_key)
    connector = member.connector
    assert isinstance(connector, CiviCRMConnector)
    try:
        api_key = connector.api_key.resolve()
        site_key = connector.site_key.resolve() if connector.site_key else None
    except MemberConfigError as err:
        raise dg.Failure(description=f"{member.org_id}: {err}", allow_retries=False) from err
    source = civicrm_source(connector.settings(), api_key, site_key)
    wanted = [
        name
        for name in source.resources
        if dg.AssetKey(["raw", name]) in context.selected_asset_keys
    ]
    pipeline = raw_pipeline(
        member.org_id, hub.warehouse().dlt_destination(), hub.settings().pipelines_dir
    )
    site = connector.site_url.rstrip("/")
    try:
        with hub.lineage(
            context,
            inputs=[f"{site}/civicrm/ajax/api4"],
            outputs=[f"{member.raw_dataset}.{name}" for name in wanted],
        ):
            yield from dlt_resource.run(
                context=context,
                dlt_source=source.with_resources(*wanted),
                dlt_pipeline=pipeline,
                dagster_dlt_translator=RawTranslator(),
            )
    except Exception as err:
        failure = as_failure(err)
        if failure is err:
            raise
        raise failure from err
