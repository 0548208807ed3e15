"""Events drive loads: the inbox sensor turns new events into member runs, and the run status
sensors write back to the inbox what became of each run.

``inbox_events`` (every 5 s) drains the events the receiver committed: one batch per member
per tick, however many events came (a burst of a hundred is one run), requested with the
batch id as ``run_key`` and tag. A tick replayed after a daemon crash launches nothing twice:
the events it batched are no longer ``received``, and a batch whose run was never created
(a crash between marking and launching) is requested again under the same ``run_key``, which
the daemon launches at most once. The three run status sensors mark a batch ``launched``,
``succeeded`` or ``failed`` from its run; the inbox sensor follows open batches as well, so a
status sensor that was off, or a run it never saw, still ends in the right state.

Rules (pipelines/lib/event_batches.py): events of a member without a partition yet, or whose
file is invalid, stay ``received`` and are named in the skip reason; events of a member that
has left the hub (no file), or whose connector the hub does not load, are marked ``failed``
with that reason, since nothing could ever load them.
"""

from __future__ import annotations

import json

import dagster as dg

from pipelines.defs.ingest.loads import RAW_ASSETS, load_request
from pipelines.lib.event_batches import (
    BATCH_TAG,
    TRIGGER,
    batch_id,
    event_inbox,
    latest_run,
    next_cursor,
    plan_batches,
    sync_batch,
)
from pipelines.lib.hub import HubResource
from pipelines.lib.members import MEMBERS, loadable_members

INTERVAL_SECONDS = 5
# Events read per tick; the rest are read at the next one (each member's share still makes
# one batch per tick).
EVENTS_PER_TICK = 10_000


# What the sensor may request: whatever a member's load selects (``load_request``), for
# every connector kind, so that the two never disagree.
EVENT_LOADS = dg.AssetSelection.assets(
    *sorted(
        {
            key
            for kind in RAW_ASSETS
            for key in load_request("any", kind, run_key="any", trigger=TRIGGER).asset_selection
            or []
        },
        key=lambda key: key.to_user_string(),
    )
)


def _request(org: str, kind: str, bid: str) -> dg.RunRequest:
    """A member's load (``load_request``: what every trigger requests), for one batch: its
    id is the run key, and the ``hub/batch`` tag lets the load read what the events said."""
    load = load_request(org, kind, run_key=bid, trigger=TRIGGER)
    return dg.RunRequest(
        run_key=load.run_key,
        partition_key=load.partition_key,
        asset_selection=load.asset_selection,
        tags={**load.tags, BATCH_TAG: bid},
    )


@dg.sensor(
    target=EVENT_LOADS,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def inbox_events(context: dg.SensorEvaluationContext, hub: HubResource) -> dg.SensorResult:
    """One run per member with new events: the member's load (``load_request``), its partition."""
    settings = hub.settings()
    inbox = event_inbox(settings.home)
    previous = json.loads(context.cursor)["seq"] if context.cursor else 0
    pending = inbox.batches(states=["batched"], limit=1000)
    launched = inbox.batches(states=["launched"], limit=1000)
    events = inbox.received_after(previous, limit=EVENTS_PER_TICK)
    for batch in launched:
        sync_batch(inbox, context.instance, batch.batch_id)
    if not pending and not events:
        return dg.SensorResult(
            skip_reason=f"no new event (last handled: {previous}; {len(launched)} run(s) followed)",
            cursor=context.cursor,
        )
    if not settings.members_dir.is_dir():  # unmounted: never read as "every member left"
        return dg.SensorResult(
            skip_reason=f"members folder {settings.members_dir} not found (HUB_MEMBERS_DIR): "
            f"{len(events)} event(s) left for later",
            cursor=context.cursor,
        )
    members = hub.registry()
    loadable = loadable_members(members)
    partitions = set(context.instance.get_dynamic_partitions(MEMBERS.name))

    requests: list[dg.RunRequest] = []
    queued: set[str] = set()
    for batch in pending:
        state = sync_batch(inbox, context.instance, batch.batch_id)
        if state == "batched":
            queued.add(batch.org_id)
        if state is not None:
            continue
        # No run for it yet: the tick that batched it ended before its run was created.
        if batch.org_id in loadable and batch.org_id in partitions:
            requests.append(_request(batch.org_id, loadable[batch.org_id], batch.batch_id))
            queued.add(batch.org_id)
        elif batch.org_id not in members.errors and batch.org_id not in loadable:
            inbox.mark_batch(batch.batch_id, "failed", detail="the member has left the hub")

    plan = plan_batches(
        events,
        loadable=loadable,
        known=members.members,
        invalid=members.errors,
        partitions=partitions,
        queued=queued,
    )
    for org, member_events in plan.batches.items():
        bid = batch_id(org, member_events[0].seq, member_events[-1].seq)
        inbox.mark_batched([e.seq for e in member_events], bid)
        requests.append(_request(org, loadable[org], bid))
    for org, (seqs, why) in plan.dropped.items():
        bid = batch_id(org, seqs[0], seqs[-1])
        inbox.mark_batched(seqs, bid)
        inbox.mark_batch(bid, "failed", detail=f"not loaded: {why}")
        context.log.warning(f"{org}: {len(seqs)} event(s) not loaded: {why}")
    cursor = json.dumps({"seq": next_cursor(previous, events, plan)})
    notes = [
        f"{org}: {len(seqs)} event(s) wait, {why}" for org, (seqs, why) in plan.waiting.items()
    ]
    if requests:
        for note in notes:
            context.log.info(note)
        return dg.SensorResult(run_requests=requests, cursor=cursor)
    return dg.SensorResult(
        skip_reason="; ".join(notes)
        or f"no member to load ({len(events)} event(s) read, {len(plan.dropped)} member(s) gone)",
        cursor=cursor,
    )


def _follow(context: dg.RunStatusSensorContext, hub: HubResource) -> dg.SkipReason:
    """Write the batch's state from its run (the same answer whichever sensor asks)."""
    run = context.dagster_run
    bid = run.tags.get(BATCH_TAG)
    if bid is None:
        return dg.SkipReason(f"run {run.run_id[:8]} loads no event batch")
    newest = latest_run(context.instance, bid)
    if newest is not None and newest.run_id != run.run_id:
        return dg.SkipReason(f"batch {bid} has a newer run {newest.run_id[:8]}")
    state = sync_batch(event_inbox(hub.settings().home), context.instance, bid)
    return dg.SkipReason(f"batch {bid}: {state}")


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.STARTED,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def event_run_started(context: dg.RunStatusSensorContext, hub: HubResource) -> dg.SkipReason:
    """Mark an event batch ``launched`` with its run id once the run starts."""
    return _follow(context, hub)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def event_run_succeeded(context: dg.RunStatusSensorContext, hub: HubResource) -> dg.SkipReason:
    """Mark an event batch ``succeeded`` when its run does."""
    return _follow(context, hub)


@dg.run_failure_sensor(
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def event_run_failed(context: dg.RunFailureSensorContext, hub: HubResource) -> dg.SkipReason:
    """Mark an event batch ``failed`` (with a reason a member can read) when its run fails."""
    return _follow(context, hub)
