"""Raw loads for members on Salesforce NPSP + PMM, one partition per member."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dlt import DagsterDltResource

from connectors.errors import MemberConfigError
from connectors.members import SalesforceConnector
from pipelines.lib.hub import HubResource
from pipelines.lib.member_status import records_load_failures
from pipelines.lib.members import MEMBERS, member_to_load
from pipelines.lib.raw_assets import full_reload, raw_specs, run_source, selected

RAW_TABLES = {
    "npsp__account": "Household and organisation Accounts.",
    "npsp__contact": "Contacts, with deletions (IsDeleted) merged on Id.",
    "pmdm__program": "PMM Programs.",
    "pmdm__service": "PMM Services, each under a Program.",
    "pmdm__program_engagement": "PMM Program Engagements: a contact's enrolment and Stage.",
    "pmdm__service_delivery": "PMM Service Deliveries: date, quantity, attendance.",
    "npsp__opportunity": "Opportunities (donations), loaded raw for later use.",
    "npsp__recurring_donation": "Recurring donations, loaded raw for later use.",
    "npsp__outcome": "Outcomes from the member-configured outcome object.",
}


@dg.multi_asset(
    name="salesforce_raw",
    specs=raw_specs(RAW_TABLES, {"dlt", "salesforce"}),
    partitions_def=MEMBERS,
    can_subset=True,
    pool="warehouse",
    retry_policy=dg.RetryPolicy(max_retries=2, delay=60, backoff=dg.Backoff.EXPONENTIAL),
)
@records_load_failures
def salesforce_raw(
    context: dg.AssetExecutionContext, hub: HubResource, dlt_resource: DagsterDltResource
) -> Iterator[Any]:
    """Load records changed since the last run (SystemModstamp windows, deletes merged on Id).

    At the member's API reserve the load stops politely: what was read is kept, the cursor
    saved, and the next run carries on; until it has, the member is held back (a hold, see
    connectors/holds.py), as it is while a field it read is unreadable or a listing of ids
    would delete more than ``max_deleted_share``.
    """
    from connectors.salesforce_npsp import SyncReport, npsp_source, raw_pipeline

    member = member_to_load(context, hub, "salesforce_npsp")
    if member is None:
        return
    connector = member.connector
    assert isinstance(connector, SalesforceConnector)
    try:
        credentials = connector.credentials()
    except MemberConfigError as err:
        raise dg.Failure(description=f"{member.org_id}: {err}", allow_retries=False) from err
    report = SyncReport()
    # The source bounds the whole load by connector.load_deadline, naming the member.
    source = npsp_source(
        connector.settings(),
        credentials,
        report=report,
        full_refresh=full_reload(context),
        member=member.org_id,
    )
    pipeline = raw_pipeline(
        member.org_id, hub.warehouse().dlt_destination(), hub.settings().pipelines_dir
    )
    try:
        yield from run_source(
            context,
            hub,
            dlt_resource,
            source=source.with_resources(*selected(context, list(source.resources))),
            pipeline=pipeline,
            dataset=member.raw_dataset,
            inputs=[connector.instance_url or connector.login_url],
            member=member,
        )
    finally:
        report.close()
        # Also when the load is held: what the run noticed is most of why.
        for message in report.messages():
            context.log.warning(f"{member.org_id}: {message}")
