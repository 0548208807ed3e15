"""After a member's load fails under the daemon, publish again so the release says so.

A failed load materialises nothing, so declarative automation has nothing to react to: the
latest release would go on showing the member as current until another member's change. This
sensor watches failed runs and, when one left its member held back (``hub.member_status``),
requests the publication assets (and their blocking checks), which publish the member's last
good data under a release that names it as held back.
"""

import dagster as dg

from pipelines.defs.publish.assets import PUBLISH_KEYS
from pipelines.lib.hub import HubResource
from pipelines.lib.run_health import PID_TAG

publish_release = dg.define_asset_job(
    "publish_release",
    selection=dg.AssetSelection.assets(*PUBLISH_KEYS),
    description="The published tables and a new release, from the data in the warehouse.",
)


@dg.run_failure_sensor(
    request_job=publish_release,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,
)
def republish_when_held_back(
    context: dg.RunFailureSensorContext, hub: HubResource
) -> dg.RunRequest | dg.SkipReason:
    """One new release per failed member run that left its member held back."""
    from transforms.member_status import member_statuses

    run = context.dagster_run
    member = run.tags.get("dagster/partition")
    if member is None:
        return dg.SkipReason(f"run {run.run_id[:8]} was not a member's run")
    if PID_TAG in run.tags:
        return dg.SkipReason(f"run {run.run_id[:8]} belongs to a hub run, which publishes itself")
    status = member_statuses(hub.warehouse()).get(member)
    if status is None or not status.held_back:
        return dg.SkipReason(f"{member} is not held back (its run failed before it mattered)")
    return dg.RunRequest(
        run_key=f"republish:{run.run_id}",
        tags={"hub/trigger": "member_held_back", "hub/member": member},
    )
