"""What every raw-load asset shares: its specs, and running a dlt source with lineage and
member-facing errors. Each connector's asset keeps only what differs (credentials, source)."""

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dagster as dg
from dagster_dlt import DagsterDltResource

from connectors.first_load import repeated_rows_removed
from connectors.holds import held_message, holds_in_state
from connectors.members import Member
from pipelines.lib.dlt_translator import RawTranslator
from pipelines.lib.errors import as_failure
from pipelines.lib.hub import HubResource
from transforms.canonical import column_slots
from transforms.erasure import apply_erasures

# Set on a load run by `hub run --full <org>`: that member's tables are re-read from scratch.
FULL_RELOAD_TAG = "hub/full_reload"


def full_reload(context: dg.AssetExecutionContext) -> bool:
    """Whether this load re-reads everything, ignoring cursors and unchanged-file checks.

    A run tag rather than config: it is one run's wish, not part of the member's settings,
    and it shows on the run in the Dagster UI.
    """
    return context.run.tags.get(FULL_RELOAD_TAG) == "true"


def event_batch(context: dg.AssetExecutionContext) -> str | None:
    """The inbox batch this run loads (its ``hub/batch`` tag), None when no event asked for it.

    A load asked for ``--full`` reads everything whatever the events said.
    """
    from pipelines.lib.event_batches import BATCH_TAG

    if full_reload(context):
        return None
    return context.run.tags.get(BATCH_TAG)


def note_event_batch(context: dg.AssetExecutionContext, hub: HubResource, note: str) -> None:
    """Tell the batch's events (``hub events``) how this load read them; never fails a load."""
    from pipelines.lib.event_batches import BATCH_TAG, event_inbox

    batch = context.run.tags.get(BATCH_TAG)
    if batch is None:
        return
    try:
        event_inbox(hub.settings().home).note_batch(batch, note)
    except Exception as err:  # the inbox is a courtesy here: the load matters more
        context.log.warning(f"could not note on event batch {batch}: {type(err).__name__}")


def raw_specs(tables: Mapping[str, str], kinds: set[str]) -> list[dg.AssetSpec]:
    """One ``raw/<table>`` spec per table; skippable, as unchanged tables are not reloaded."""
    return [
        dg.AssetSpec(
            ["raw", table], description=text, group_name="ingest", kinds=kinds, skippable=True
        )
        for table, text in tables.items()
    ]


def selected(context: dg.AssetExecutionContext, names: Sequence[str]) -> list[str]:
    """The resource names whose raw assets this run materialises."""
    return [n for n in names if dg.AssetKey(["raw", n]) in context.selected_asset_keys]


def run_source(
    context: dg.AssetExecutionContext,
    hub: HubResource,
    dlt_resource: DagsterDltResource,
    *,
    source: Any,
    pipeline: Any,
    dataset: str,
    inputs: Sequence[str],
    member: Member,
) -> Iterator[Any]:
    """Run ``source`` into ``pipeline`` with OpenLineage events; a member-facing connector
    error becomes a Failure that is never retried, a transient one is left to retry policy.

    After the load, anyone the member's people asked the hub to forget (``hub forget``) is
    erased again from what the load brought: the member's own system may still send them.

    A load that ran but must not be taken (a hold, see connectors/holds.py) fails after its
    commit, so the member is held back and the next run resumes from what it kept.
    """
    outputs = [f"{dataset}.{name}" for name in source.selected_resources]
    try:
        # dlt opens the DuckDB file itself: hold it against other processes meanwhile.
        with hub.warehouse().exclusive(), hub.lineage(context, inputs=inputs, outputs=outputs):
            yield from dlt_resource.run(
                context=context,
                dlt_source=source,
                dlt_pipeline=pipeline,
                dagster_dlt_translator=RawTranslator(),
            )
            repaired = repeated_rows_removed(pipeline, source.selected_resources)
            for table, keys in repaired.items():
                context.log.warning(
                    f"{member.org_id}: {table} held {keys} record(s) twice (a load job run "
                    "again after a crash); cut back to one"
                )
            erased = apply_erasures(
                hub.warehouse(), member.org_id, column_slots(member).get("contact")
            )
            if erased.total:
                context.log.info(
                    f"{member.org_id}: {erased.total} row(s) of people forgotten on request "
                    "came back with this load and were erased again"
                )
    except Exception as err:
        failure = as_failure(err)
        if failure is err:
            raise
        raise failure from err
    # The load and its state are committed; a hold the source set (connectors/holds.py) now
    # fails the member's load, so it is held back and nothing downstream maps it.
    holds = holds_in_state(pipeline.state)
    if holds:
        raise dg.Failure(
            description=held_message(member.org_id, holds),
            allow_retries=False,
            metadata={"error_type": "SourceHold", "holds": len(holds)},
        )
