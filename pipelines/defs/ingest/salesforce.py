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
from pipelines.lib.raw_assets import (
    event_batch,
    full_reload,
    note_event_batch,
    raw_specs,
    run_source,
    selected,
)

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
        targets=_event_targets(context, hub, member.org_id, connector),
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


def _event_targets(
    context: dg.AssetExecutionContext,
    hub: HubResource,
    org_id: str,
    connector: SalesforceConnector,
) -> dict[str, Any] | None:
    """The records the run's event batch named, to read by id; None to read the window.

    A member held back reads its window whatever the events said: only a window read can
    lift a hold (a stopped read, hidden fields, doubtful deletions).
    """
    from connectors.holds import member_holds
    from connectors.salesforce_npsp import SOURCE_NAME, object_specs
    from connectors.salesforce_npsp.targeted import plan_targets
    from pipelines.lib.event_batches import batch_changes

    batch = event_batch(context)
    if batch is None:
        return None
    settings = hub.settings()
    targets = None
    if member_holds(settings.pipelines_dir, org_id, [SOURCE_NAME]):
        why = "the member's last load is held, which only a window read can lift"
    else:
        sobjects = [spec.sobject for spec in object_specs(connector.settings())]
        try:
            changes = batch_changes(settings.home, batch)
        except Exception as err:  # the window loses nothing; the inbox is only a shortcut
            changes = None
            why = f"the event inbox could not be read ({type(err).__name__})"
        if changes is not None:
            targets, why = plan_targets(changes, sobjects)
    note = why if targets is not None else f"incremental window read: {why}"
    context.log.info(f"{org_id}: event batch {batch}: {note}")
    note_event_batch(context, hub, note)
    return targets
