"""Published dataset: disclosure-controlled tables and a versioned release folder."""

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from pydantic import Field

from pipelines.lib.automation import downstream_of_any_update
from pipelines.lib.hub import HubResource
from transforms.publish import PUBLISHED_TABLES

TABLE_KEYS = [dg.AssetKey(["published", name]) for name in PUBLISHED_TABLES]
RELEASE_KEY = dg.AssetKey(["published", "release"])
PUBLISH_KEYS = [*TABLE_KEYS, RELEASE_KEY]

DESCRIPTIONS = {
    "outcomes_summary": "People engaged and achieving outcomes per quarter, district and "
    "outcome; counts below the threshold suppressed.",
    "cross_org_reach": "People served per quarter and district, by how many members served them.",
    "organisation_summary": "Records each member contributed and had quarantined, and "
    "whether its data is current or held back (its last good data published).",
}


def _refuse_if_nothing_to_publish(hub: HubResource) -> None:
    """A release needs a member with loaded data: refuse (never retried) rather than write
    empty tables and move LATEST to them."""
    from transforms.member_status import nothing_to_publish

    reason = nothing_to_publish(hub.warehouse())
    if reason:
        raise dg.Failure(description=reason, allow_retries=False)


class PublishConfig(dg.Config):
    """What a publication does beyond the default (new quarters that have ended, frozen
    quarters repeated unchanged): ``revise`` recounts published quarters (a revision,
    audited against every earlier version of them); ``provisional`` also publishes the
    quarter that has not ended yet (frozen the same way once published)."""

    revise: list[str] = Field(default_factory=list)
    provisional: bool = False


INPUTS = [
    dg.AssetKey(["hub", "person_link"]),
    *(
        dg.AssetKey(["canonical", t])
        for t in ("person", "programme", "engagement", "service_delivery", "outcome")
    ),
    dg.AssetKey(["quarantine", "rejected_rows"]),
]


@dg.multi_asset(
    name="published_tables",
    specs=[
        dg.AssetSpec(
            key,
            description=DESCRIPTIONS[key.path[-1]],
            group_name="publish",
            kinds={"sql", "duckdb"},
            deps=INPUTS,
            automation_condition=downstream_of_any_update(),
        )
        for key in TABLE_KEYS
    ],
    pool="warehouse",
)
def published_tables(context: dg.AssetExecutionContext, hub: HubResource, config: PublishConfig):
    """Count people per quarter and district, repeat frozen quarters, revise the quarters
    asked for, and apply disclosure control (withholding until the integer-programming
    attack cannot narrow any withheld count, or any small change since an earlier release,
    down)."""
    from transforms.disclosure import DisclosureError
    from transforms.publish import prepare_release
    from transforms.release_plan import PlanError

    _refuse_if_nothing_to_publish(hub)
    threshold = hub.settings().disclosure_threshold
    warehouse = hub.warehouse()
    now = datetime.now(UTC)
    version = now.strftime("%Y.%m.%d-%H%M%S")
    inputs = [".".join(key.path) for key in INPUTS]
    outputs = [f"published.{name}" for name in PUBLISHED_TABLES]
    with hub.lineage(context, inputs=inputs, outputs=outputs):
        try:
            prepared = prepare_release(
                warehouse,
                threshold=threshold,
                version=version,
                today=now.date(),
                revise=config.revise,
                provisional=config.provisional,
            )
        except (PlanError, DisclosureError) as err:
            raise dg.Failure(description=str(err), allow_retries=False) from None
    plan, control, version = prepared.plan, prepared.control, prepared.version
    context.log.info(
        f"release {version}: new {', '.join(plan.new) or 'none'}; revised "
        f"{', '.join(plan.revised) or 'none'}; repeated unchanged "
        f"{', '.join(plan.carried) or 'none'}; disclosure control {control.rounds} audit "
        f"round(s), {control.audit.solves} solver runs, {control.audit.seconds:.1f} s"
    )
    if prepared.erasure_revised:
        context.log.info(
            "revised after erasures (hub forget / hub remove-member): "
            + ", ".join(prepared.erasure_revised)
        )
    if prepared.erasure_waiting:
        context.log.warning(
            "erasures asked to revise "
            + ", ".join(prepared.erasure_waiting)
            + ", which could not be revised safely now (or have no counts left): they are "
            "repeated unchanged and tried again with the next release"
        )
    if prepared.pending_revisions:
        context.log.warning(
            "counts changed since publication for "
            + ", ".join(prepared.pending_revisions)
            + ": they are repeated unchanged; publish a revision to update them"
        )
    for name, table in prepared.tables.items():
        loss = prepared.loss.get(name)
        yield dg.MaterializeResult(
            asset_key=["published", name],
            metadata={
                "dagster/row_count": table.num_rows,
                "release_version": version,
                "suppressed_cells": loss.withheld if loss else 0,
                "withheld_share": loss.withheld_share if loss else 0.0,
                "threshold": threshold,
                "new_periods": ", ".join(plan.new),
                "revised_periods": ", ".join(plan.revised),
                "frozen_periods": ", ".join(plan.carried),
                "pending_revisions": ", ".join(prepared.pending_revisions),
                "erasure_revised_periods": ", ".join(prepared.erasure_revised),
                "erasure_waiting_periods": ", ".join(prepared.erasure_waiting),
            },
        )


def _code_version() -> str:
    """The git commit the code runs from, or the package version outside a checkout."""
    root = Path(__file__).resolve().parents[3]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        return f"{sha}{'-dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import version

        return f"outcomes-hub {version('outcomes-hub')}"


@dg.asset(
    key=RELEASE_KEY,
    group_name="publish",
    kinds={"parquet", "csv"},
    deps=TABLE_KEYS,
    automation_condition=downstream_of_any_update(),
    pool="warehouse",
)
def release(context: dg.AssetExecutionContext, hub: HubResource) -> dg.MaterializeResult:
    """A versioned release folder: CSV, Parquet, datapackage.json, lineage.json, index.html."""
    from transforms.lineage import build_lineage
    from transforms.publish import disclosure_summary, release_meta
    from transforms.release import write_release

    _refuse_if_nothing_to_publish(hub)
    settings = hub.settings()
    meta = release_meta(hub.warehouse())
    if meta is None:
        raise dg.Failure(
            description="no release has been prepared: materialise the published tables first",
            allow_retries=False,
        )
    version = meta["version"]
    if (settings.releases_dir / version).exists():  # written already (a retried run)
        from transforms.release import point_latest

        folder = settings.releases_dir / version
        point_latest(settings.releases_dir, version)  # a crash may have come before LATEST
        return dg.MaterializeResult(
            metadata={"version": version, "path": dg.MetadataValue.path(str(folder))}
        )
    inputs = [f"published.{name}" for name in PUBLISHED_TABLES]
    with hub.lineage(context, inputs=inputs) as lineage_run:
        with hub.warehouse().connect() as session:
            tables = {
                name: session.arrow(f"SELECT * FROM published.{name}") for name in PUBLISHED_TABLES
            }
            lineage = build_lineage(
                session, run_id=context.run.run_id, code_version=_code_version()
            )
        folder = write_release(
            settings.releases_dir,
            version,
            tables,
            lineage,
            disclosure_threshold=settings.disclosure_threshold,
            disclosure=disclosure_summary(hub.warehouse()),
        )
        lineage_run.outputs.extend(str(path) for path in sorted(folder.iterdir()))
    return dg.MaterializeResult(
        metadata={
            "version": version,
            "path": dg.MetadataValue.path(str(folder)),
            "page": dg.MetadataValue.path(str(folder / "index.html")),
            **{f"rows_{name}": t.num_rows for name, t in tables.items()},
        }
    )
