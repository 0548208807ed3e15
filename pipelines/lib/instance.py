"""A persistent local Dagster instance configured by the repo's dagster.yaml."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO_DAGSTER_YAML = Path(__file__).resolve().parents[2] / "dagster.yaml"


def prepare_dagster_home(home: Path) -> Path:
    """Create ``home`` and put the project's dagster.yaml in it if none is there.

    Dagster reads dagster.yaml from $DAGSTER_HOME only; an existing file is left alone so a
    deployment's own settings are never overwritten.
    """
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists() and REPO_DAGSTER_YAML.exists():
        shutil.copyfile(REPO_DAGSTER_YAML, target)
    return home
