"""Run the asset graph in-process, stage by stage, for the CLI (`hub run`, `hub demo`).

Dagster jobs cannot mix partitioned and unpartitioned assets, so a full refresh is: for each
member, its raw load then its canonical slice (partitioned by member), then linkage and
publication once for the network. Runs go to the instance at $DAGSTER_HOME when set, so
`dagster dev` shows them afterwards.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from dagster_dlt import DagsterDltResource

from pipelines.lib.hub import HubResource
from pipelines.lib.raw_assets import FULL_RELOAD_TAG
from pipelines.lib.run_health import run_tags
from pipelines.settings import HubSettings


@dataclass
class StageResult:
    """Outcome of one stage (one Dagster run)."""

    name: str
    success: bool
    run_id: str
    error: str | None = None
    metadata: dict[str, dict] = field(default_factory=dict)
    skipped: bool = False  # not run at all (``error`` says why)

    @property
    def released(self) -> bool:
        """Whether this stage wrote a release (the publish stage, when it succeeded)."""
        return self.success and "published/release" in self.metadata


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


@functools.cache
def _asset_graph() -> list[Any]:
    """Every asset and check, loaded from pipelines/defs/ once per process.

    Loading the folder takes a few tenths of a second, and a `hub run` has two stages per
    member plus two; the definitions cannot change while it runs.
    """
    from pipelines.definitions import defs

    definitions = defs()
    return list(definitions.assets or []) + list(definitions.asset_checks or [])


def run_stage(
    name: str,
    keys: Sequence[dg.AssetKey],
    settings: HubSettings,
    instance: dg.DagsterInstance,
    partition_key: str | None = None,
    log_level: str = "CRITICAL",
    publish_config: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
) -> StageResult:
    """Materialise ``keys`` (and their checks) in one in-process run.

    The console stays quiet by default (the CLI reports each stage and its error itself);
    every event is still stored in the instance, so the Dagster UI has each run's full log.
    """
    result = dg.materialize(
        _asset_graph(),
        selection=dg.AssetSelection.assets(*keys),
        partition_key=partition_key,
        instance=instance,
        resources=resources_for(settings),
        raise_on_error=False,
        tags={"hub/stage": name, **run_tags(), **(tags or {})},
        run_config={
            "loggers": {"console": {"config": {"log_level": log_level}}},
            **({"ops": {"published_tables": {"config": publish_config}}} if publish_config else {}),
        },
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
    stop: threading.Event | None = None,
    full: Collection[str] = (),
) -> list[StageResult]:
    """Load and map each member, then link and publish; one member's failure stops no other.

    When ``stop`` is set (Ctrl-C, SIGTERM) no further stage starts. The members in ``full``
    are re-read from scratch (their load run carries FULL_RELOAD_TAG).
    """
    from connectors.members import load_members
    from pipelines.lib.members import sync_member_partitions

    members = load_members(settings.members_dir)
    # Member partitions are dynamic: the instance must know each member before it runs.
    sync_member_partitions(instance, members)
    kinds = {org: members.members[org].connector.kind for org in org_ids}
    results: list[StageResult] = []
    failed_orgs: set[str] = set()
    for name, keys, partition, tags in plan_stages(kinds, full):
        if stop is not None and stop.is_set():
            break
        if partition in failed_orgs:
            continue
        if partition is None and (why := _nothing_to_publish(settings, results)):
            # Linking and publishing nobody's data would write an empty release.
            result = StageResult("publish", success=False, run_id="", error=why, skipped=True)
            results.append(result)
            if on_done:
                on_done(result)
            break
        if on_stage:
            on_stage(name)
        result = run_stage(
            name, keys, settings, instance, partition, log_level=log_level, tags=tags
        )
        if not result.success and partition:
            failed_orgs.add(partition)
        results.append(result)
        if on_done:
            on_done(result)
    return results


Stage = tuple[str, list[dg.AssetKey], str | None, dict[str, str] | None]


def plan_stages(kinds: dict[str, str], full: Collection[str] = ()) -> list[Stage]:
    """(name, asset keys, partition, run tags) of each stage: every member's load and
    mapping (``kinds``: org id -> connector kind, in run order), then linking and publishing.

    A member in ``full`` has its load run tagged FULL_RELOAD_TAG: its tables are re-read.
    """
    from pipelines.defs.ingest import civicrm, salesforce, spreadsheets
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
    stages: list[Stage] = []
    for org, kind in kinds.items():
        if org in full:
            stages.append((f"full load {org}", raw_keys[kind], org, {FULL_RELOAD_TAG: "true"}))
        else:
            stages.append((f"load {org}", raw_keys[kind], org, None))
        stages.append((f"map {org}", canonical_keys, org, None))
    stages.append(("link people", [dg.AssetKey(["hub", "person_link"])], None, None))
    stages.append(("publish", _publish_keys(), None, None))
    return stages


def _nothing_to_publish(settings: HubSettings, results: Sequence[StageResult]) -> str | None:
    """Why linking and publishing would be pointless (no member has loaded data), or None."""
    from transforms.member_status import NOTHING_TO_PUBLISH, members_with_data
    from transforms.warehouse import DuckDBWarehouse

    if settings.warehouse_path.exists():
        try:
            if members_with_data(DuckDBWarehouse(settings.warehouse_path)):
                return None
        except Exception:  # let the publish assets decide (and say why)
            return None
    failed = [
        f"{r.name}: {((r.error or '').strip().splitlines() or ['failed'])[0][:300]}"
        for r in results
        if not r.success
    ]
    if failed:
        return f"{NOTHING_TO_PUBLISH} (all loads failed: {'; '.join(failed)})"
    return f"{NOTHING_TO_PUBLISH} (no member's load brought any records)"


def publish(
    settings: HubSettings,
    instance: dg.DagsterInstance,
    *,
    revise: Sequence[str] = (),
    provisional: bool = False,
    log_level: str = "CRITICAL",
) -> StageResult:
    """Publish a release from the data already loaded: quarters that have ended for the
    first time, frozen ones repeated, ``revise`` recounted (a revision), the open quarter
    only if ``provisional``."""
    config = {"revise": list(revise), "provisional": provisional}
    return run_stage(
        "publish", _publish_keys(), settings, instance, log_level=log_level, publish_config=config
    )


def _publish_keys() -> list[dg.AssetKey]:
    from pipelines.defs.publish.assets import PUBLISH_KEYS

    return list(PUBLISH_KEYS)
