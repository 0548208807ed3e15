"""Run the asset graph in-process, stage by stage, for the CLI (`hub run`, `hub demo`).

Dagster jobs cannot mix partitioned and unpartitioned assets, so a full refresh is: for each
member, its raw load then its canonical slice (partitioned by member), then linkage and
publication once for the network. Runs go to the instance at $DAGSTER_HOME when set, so
`dagster dev` shows them afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import dagster as dg
from dagster_dlt import DagsterDltResource

from pipelines.lib.hub import HubResource
from pipelines.settings import HubSettings


@dataclass
class StageResult:
    """Outcome of one stage (one Dagster run)."""

    name: str
    success: bool
    run_id: str
    error: str | None = None
    metadata: dict[str, dict] = field(default_factory=dict)


def _error_text(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            err = event.step_failure_data.error
            user = event.step_failure_data.user_failure_data
            if user is not None and user.description:
                return user.description
            if err is not None:
                cause = err
                while cause.cause is not None:
                    cause = cause.cause
                return cause.message.strip()
    return "the run failed; see the Dagster run logs"


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for mat in result.get_asset_materialization_events():
        m = mat.materialization
        out["/".join(m.asset_key.path)] = {k: v.value for k, v in m.metadata.items()}
    return out


def resources_for(settings: HubSettings) -> dict[str, object]:
    """Resources pinned to explicit paths, so a run never depends on the caller's cwd."""
    hub = HubResource(
        home=str(settings.home),
        members_dir=str(settings.members_dir),
        warehouse_path=str(settings.warehouse_path),
        pipelines_dir=str(settings.pipelines_dir),
        releases_dir=str(settings.releases_dir),
        disclosure_threshold=settings.disclosure_threshold,
    )
    return {"hub": hub, "dlt_resource": DagsterDltResource()}


def run_stage(
    name: str,
    keys: Sequence[dg.AssetKey],
    settings: HubSettings,
    instance: dg.DagsterInstance,
    partition_key: str | None = None,
    log_level: str = "CRITICAL",
) -> StageResult:
    """Materialise ``keys`` (and their checks) in one in-process run.

    The console stays quiet by default (the CLI reports each stage and its error itself);
    every event is still stored in the instance, so the Dagster UI has each run's full log.
    """
    from pipelines.definitions import defs

    definitions = defs()
    graph_assets = list(definitions.assets or []) + list(definitions.asset_checks or [])
    result = dg.materialize(
        graph_assets,
        selection=dg.AssetSelection.assets(*keys),
        partition_key=partition_key,
        instance=instance,
        resources=resources_for(settings),
        raise_on_error=False,
        tags={"hub/stage": name},
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )
    return StageResult(
        name=name,
        success=result.success,
        run_id=result.run_id,
        error=None if result.success else _error_text(result),
        metadata=_metadata(result),
    )


def refresh(
    settings: HubSettings,
    org_ids: Sequence[str],
    instance: dg.DagsterInstance,
    on_stage: Callable[[str], None] | None = None,
    on_done: Callable[[StageResult], None] | None = None,
    log_level: str = "CRITICAL",
) -> list[StageResult]:
    """Load and map each member, then link and publish; one member's failure stops no other."""
    from pipelines.defs.ingest import civicrm, salesforce, spreadsheets
    from pipelines.lib.members import registry
    from transforms.canonical import CANONICAL_TABLES

    raw_keys = {
        kind: [dg.AssetKey(["raw", t]) for t in module.RAW_TABLES]
        for kind, module in (
            ("spreadsheet", spreadsheets),
            ("salesforce_npsp", salesforce),
            ("civicrm", civicrm),
        )
    }
    canonical_keys = [dg.AssetKey(["canonical", t]) for t in CANONICAL_TABLES] + [
        dg.AssetKey(["quarantine", "rejected_rows"])
    ]
    stages: list[tuple[str, list[dg.AssetKey], str | None]] = []
    for org in org_ids:
        kind = registry().members[org].connector.kind
        stages.append((f"load {org}", raw_keys[kind], org))
        stages.append((f"map {org}", canonical_keys, org))
    stages.append(("link people", [dg.AssetKey(["hub", "person_link"])], None))
    stages.append(("publish", _publish_keys(), None))
    results: list[StageResult] = []
    failed_orgs: set[str] = set()
    for name, keys, partition in stages:
        if partition in failed_orgs:
            continue
        if on_stage:
            on_stage(name)
        result = run_stage(name, keys, settings, instance, partition, log_level=log_level)
        if not result.success and partition:
            failed_orgs.add(partition)
        results.append(result)
        if on_done:
            on_done(result)
    return results


def _publish_keys() -> list[dg.AssetKey]:
    from pipelines.defs.publish.assets import PUBLISH_KEYS

    return list(PUBLISH_KEYS)
