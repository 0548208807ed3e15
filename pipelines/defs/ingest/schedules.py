"""Safety net: every member is loaded on a schedule, whatever the sensors saw.

CRM members (Salesforce, CiviCRM) have no file that changes when their records do: this is
what loads them unattended. Downstream assets follow by declarative automation.
"""

import os
from collections.abc import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
from dagster._utils.schedules import is_valid_cron_string

from pipelines.defs.ingest.loads import LOADS, load_request
from pipelines.lib.hub import HubResource
from pipelines.lib.members import MEMBERS, loadable_members

DEFAULT_REFRESH_CRON = "0 3 * * *"
DEFAULT_REFRESH_TIMEZONE = "Europe/London"


def refresh_timing(environ: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """The refresh schedule's cron and time zone, from HUB_REFRESH_CRON / HUB_REFRESH_TIMEZONE."""
    cron = environ.get("HUB_REFRESH_CRON", "").strip() or DEFAULT_REFRESH_CRON
    if not is_valid_cron_string(cron):
        raise ValueError(
            f"HUB_REFRESH_CRON={cron!r} is not a cron schedule Dagster accepts: five fields, "
            f"minute hour day-of-month month day-of-week (default {DEFAULT_REFRESH_CRON!r}, "
            "03:00 every day)"
        )
    timezone = environ.get("HUB_REFRESH_TIMEZONE", "").strip() or DEFAULT_REFRESH_TIMEZONE
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ValueError(
            f"HUB_REFRESH_TIMEZONE={timezone!r} is not an IANA time zone name "
            f"(default {DEFAULT_REFRESH_TIMEZONE!r})"
        ) from err
    return cron, timezone


REFRESH_CRON, REFRESH_TIMEZONE = refresh_timing()


@dg.schedule(
    cron_schedule=REFRESH_CRON,
    execution_timezone=REFRESH_TIMEZONE,
    target=LOADS,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Loads every member (its connector's raw assets) "
    f"at '{REFRESH_CRON}' ({REFRESH_TIMEZONE}); set HUB_REFRESH_CRON / HUB_REFRESH_TIMEZONE.",
)
def refresh_members(context: dg.ScheduleEvaluationContext, hub: HubResource):
    """One run per member with a partition, loading that member's raw data.

    The member files are read at tick time. A member whose file is invalid is skipped (it is
    held back with its last good data); one without a partition yet waits for the
    ``member_files`` sensor, which loads it as soon as it adds the partition.
    """
    members = hub.registry()
    loadable = loadable_members(members)
    partitions = set(context.instance.get_dynamic_partitions(MEMBERS.name))
    due = [org for org in loadable if org in partitions]
    not_yet = sorted(set(loadable) - partitions)
    if not_yet:
        context.log.info(f"no partition yet (the member_files sensor adds it): {not_yet}")
    if members.errors:
        context.log.warning(f"member file(s) invalid, not refreshed: {sorted(members.errors)}")
    if not due:
        return dg.SkipReason(
            f"no member to refresh: {len(loadable)} valid member file(s), "
            f"{len(partitions)} member partition(s)"
        )
    tick = context.scheduled_execution_time.isoformat()
    return [
        load_request(org, loadable[org], run_key=f"{org}:{tick}", trigger="schedule") for org in due
    ]
