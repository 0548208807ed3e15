"""The one way a connector makes its dlt pipeline for a member."""

from __future__ import annotations

from pathlib import Path

import dlt
from dlt.common.destination import AnyDestination


def member_pipeline(
    org_id: str, source_name: str, destination: AnyDestination | str, pipelines_dir: Path | str
) -> dlt.Pipeline:
    """Pipeline ``hub_<org>_<source>`` loading into dataset ``raw_<org>``.

    dlt keeps state (cursors, fingerprints) per pipeline, so every member and source gets its
    own; sharing one would let members overwrite each other's cursors. Connectors yield Arrow
    items, which skip the row normaliser that adds ``_dlt_load_id``; the SQL transforms need
    that column (it becomes ``_load_id``), so it is switched on for this pipeline only, in
    memory, never on disk; so are emptying the staging dataset and deleting loaded job files.
    """
    name = f"hub_{org_id}_{source_name}"
    dlt.config[f"{name}.normalize.parquet_normalizer.add_dlt_load_id"] = True
    # Personal data must not linger where nobody looks (issue #18): the merge's staging copy
    # is emptied after each load, and the load package's completed job files (the rows
    # themselves) are deleted from the local pipelines folder once loaded.
    dlt.config[f"{name}.load.truncate_staging_dataset"] = True
    dlt.config[f"{name}.load.delete_completed_jobs"] = True
    return dlt.pipeline(
        pipeline_name=name,
        destination=destination,
        dataset_name=f"raw_{org_id}",
        pipelines_dir=str(pipelines_dir),
    )
