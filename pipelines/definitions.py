"""Code location entry point: everything under ``pipelines/defs/`` is loaded automatically."""

from __future__ import annotations

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    """Assets, checks, sensors and resources found in pipelines/defs/; none listed by hand."""
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
