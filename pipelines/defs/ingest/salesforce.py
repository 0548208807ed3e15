"""Raw loads for members on Salesforce NPSP + PMM, one partition per member."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dlt import DagsterDltResource

from connectors.errors import MemberConfigError
from connectors.members import SalesforceConnector
from pipelines.lib.dlt_translator import RawTranslator
from pipelines.lib.errors import as_failure
from pipelines.lib.hub import HubResource
from pipelines.lib.members import members_of

SALESFORCE_MEMBERS = members_of("salesforce_npsp")

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
    specs=[
        dg.AssetSpec(
            ["raw", table],
            description=text,
            group_name="ingest",
            kinds={"dlt", "salesforce"},
            skippable=True,
        )
        for table, text in RAW_TABLES.items()
    ],
    partitions_def=SALESFORCE_MEMBERS,
    can_subset=True,
    pool="warehouse",
    retry_policy=dg.RetryPolicy(max_retries=2, delay=60, backoff=dg.Backoff.EXPONENTIAL),
)
def salesforce_raw(
    context: dg.AssetExecutionContext, hub: HubResource, dlt_resource: DagsterDltResource
) -> Iterator[Any]:
    """Load records changed since the last run (SystemModstamp windows, deletes merged on Id).

    At the member's API reserve the load stops politely: what was read is kept, the cursor
    saved, and the next run carries on.
    """
    from connectors.salesforce_npsp import SyncReport, npsp_source, raw_pipeline

    member = hub.member(context.partition_key)
    connector = member.connector
    assert isinstance(connector, SalesforceConnector)
    try:
        credentials = connector.credentials()
    except MemberConfigError as err:
        raise dg.Failure(description=f"{member.org_id}: {err}", allow_retries=False) from err
    report = SyncReport()
    source = npsp_source(connector.settings(), credentials, report=report)
    wanted = [
        name
        for name in source.resources
        if dg.AssetKey(["raw", name]) in context.selected_asset_keys
    ]
    pipeline = raw_pipeline(
        member.org_id, hub.warehouse().dlt_destination(), hub.settings().pipelines_dir
    )
    try:
        with hub.lineage(
            context,
            inputs=[connector.instance_url or connector.login_url],
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
    finally:
        report.close()
    for message in report.messages():
        context.log.warning(f"{member.org_id}: {message}")
