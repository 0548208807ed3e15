"""Declarative automation: after a member's raw load, everything downstream follows.

Evaluated every 5 s (the daemon's own loop runs every 5 s, so a shorter interval buys
nothing): a webhook reaches a release through two automation hops (canonical, then linkage
and publication), and the issue's target is under a minute end to end. An evaluation with
nothing new costs well under a second on the demo network.
"""

import dagster as dg

AUTOMATION_INTERVAL_SECONDS = 5

hub_automation = dg.AutomationConditionSensorDefinition(
    "hub_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=AUTOMATION_INTERVAL_SECONDS,
    description="Evaluates each asset's automation condition: a member's new raw load "
    "rebuilds that member's canonical partition, then linkage and publication.",
)
