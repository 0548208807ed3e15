"""Raw loads for members on CiviCRM (APIv4 over REST), one partition per member."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dlt import DagsterDltResource

from connectors.errors import MemberConfigError
from connectors.members import CiviCRMConnector
from pipelines.lib.hub import HubResource
from pipelines.lib.member_status import records_load_failures
from pipelines.lib.members import MEMBERS, member_to_load
from pipelines.lib.raw_assets import full_reload, raw_specs, run_source, selected

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
    specs=raw_specs(RAW_TABLES, {"dlt", "duckdb"}),
    partitions_def=MEMBERS,
    can_subset=True,
    pool="warehouse",
    # 5xx and timeouts are retried inside the client first; a run that still fails on a
    # transient fault is tried again later. Member-facing errors are never retried.
    retry_policy=dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL),
)
@records_load_failures
def civicrm_raw(
    context: dg.AssetExecutionContext, hub: HubResource, dlt_resource: DagsterDltResource
) -> Iterator[Any]:
    """Load the member's changed CiviCRM records into raw_<org> (incremental, merged on id)."""
    from connectors.civicrm import civicrm_source, raw_pipeline

    member = member_to_load(context, hub, "civicrm")
    if member is None:
        return
    connector = member.connector
    assert isinstance(connector, CiviCRMConnector)
    try:
        api_key = connector.api_key.resolve()
        site_key = connector.site_key.resolve() if connector.site_key else None
    except MemberConfigError as err:
        raise dg.Failure(description=f"{member.org_id}: {err}", allow_retries=False) from err
    # The source bounds the whole load by connector.load_deadline, naming the member.
    source = civicrm_source(
        connector.settings(),
        api_key,
        site_key,
        member=member.org_id,
        full_reload=full_reload(context),
    )
    pipeline = raw_pipeline(
        member.org_id, hub.warehouse().dlt_destination(), hub.settings().pipelines_dir
    )
    yield from run_source(
        context,
        hub,
        dlt_resource,
        source=source.with_resources(*selected(context, list(source.resources))),
        pipeline=pipeline,
        dataset=member.raw_dataset,
        inputs=[f"{connector.site_url.rstrip('/')}/civicrm/ajax/api4"],
        member=member,
    )
