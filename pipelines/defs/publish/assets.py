"""Published dataset: disclosure-controlled tables and a versioned release folder."""

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

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
def published_tables(context: dg.AssetExecutionContext, hub: HubResource):
    """Count people per quarter and district, then apply disclosure control (withholding
    until the integer-programming attack cannot narrow any withheld count down)."""
    from transforms.disclosure import control_release
    from transforms.publish import compute_counts, counted_tables, write_published

    _refuse_if_nothing_to_publish(hub)
    threshold = hub.settings().disclosure_threshold
    warehouse = hub.warehouse()
    inputs = [".".join(key.path) for key in INPUTS]
    outputs = [f"published.{name}" for name in PUBLISHED_TABLES]
    with hub.lineage(context, inputs=inputs, outputs=outputs):
        counts = compute_counts(warehouse, threshold=threshold)
        controlled = control_release(counted_tables(counts), threshold=threshold)
        write_published(warehouse, controlled.tables, controlled.loss)
    context.log.info(
        f"disclosure control: {controlled.rounds} audit round(s), {controlled.audit.solves} "
        f"solver runs, {controlled.audit.seconds:.1f} s"
    )
    for name, table in controlled.tables.items():
        loss = controlled.loss.get(name)
        yield dg.MaterializeResult(
            asset_key=["published", name],
            metadata={
                "dagster/row_count": table.num_rows,
                "suppressed_cells": loss.withheld if loss else 0,
                "withheld_share": loss.withheld_share if loss else 0.0,
                "threshold": threshold,
                "periods": ", ".join(counts.periods),
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
    from transforms.publish import disclosure_summary
    from transforms.release import write_release

    _refuse_if_nothing_to_publish(hub)
    settings = hub.settings()
    version = datetime.now(UTC).strftime("%Y.%m.%d-%H%M%S")
    inputs = [f"published.{name}" for name in PUBLISHED_TABLES]
    with hub.lineage(context, inputs=inputs) as lineage_run:
        with hub.warehouse().connect() as session:
            tables = {
                name: session.arrow(f"SELECT * FROM published.{name}") for name in PUBLISHED_TABLES
            }
            lineage = build_lineage(session, run_id=context.run_id, code_version=_code_version())
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
