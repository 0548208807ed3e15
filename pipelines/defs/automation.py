"""Declarative automation: after a member's raw load, everything downstream follows."""

import dagster as dg

hub_automation = dg.AutomationConditionSensorDefinition(
    "hub_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Evaluates each asset's automation condition: a member's new raw load "
    "rebuilds that member's canonical partition, then linkage and publication.",
)
