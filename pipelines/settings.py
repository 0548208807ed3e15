"""Where the hub keeps its files, read from the environment with working defaults.

Everything lives under one folder (``HUB_HOME``, default ``.hub`` in the current directory)
so a demo or a test can be thrown away by deleting it. Each path can be overridden alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HubSettings:
    """Paths and policy knobs for one hub instance."""

    home: Path
    members_dir: Path
    warehouse_path: Path
    pipelines_dir: Path
    releases_dir: Path
    disclosure_threshold: int

    @classmethod
    def from_env(cls) -> HubSettings:
        """Settings from ``HUB_*`` environment variables, defaulting under ``HUB_HOME``."""
        home = Path(os.environ.get("HUB_HOME", ".hub")).resolve()
        threshold = os.environ.get("HUB_DISCLOSURE_THRESHOLD", "5")
        if not threshold.isdigit() or int(threshold) < 1:
            raise ValueError(
                f"HUB_DISCLOSURE_THRESHOLD={threshold!r} must be a whole number of at least 1"
            )
        return cls(
            home=home,
            members_dir=Path(os.environ.get("HUB_MEMBERS_DIR", "members")).resolve(),
            warehouse_path=Path(
                os.environ.get("HUB_WAREHOUSE", home / "warehouse.duckdb")
            ).resolve(),
            pipelines_dir=Path(os.environ.get("HUB_DLT_DIR", home / "dlt")).resolve(),
            releases_dir=Path(os.environ.get("HUB_RELEASES_DIR", home / "releases")).resolve(),
            disclosure_threshold=int(threshold),
        )
