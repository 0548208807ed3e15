"""Run the `hub` command in a fresh process, as a member or operator would.

A fresh process, so each command sees only its own environment (HUB_*, DAGSTER_HOME).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def hub_env(tmp_path: Path, members: Path, **extra: str) -> dict[str, str]:
    """Environment for a hub whose files all live under ``tmp_path`` (nothing inherited)."""
    env = {
        **os.environ,
        "HUB_HOME": str(tmp_path / "hub"),
        "HUB_MEMBERS_DIR": str(members),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "COLUMNS": "200",
        **extra,
    }
    for var in ("HUB_WAREHOUSE", "HUB_DLT_DIR", "HUB_RELEASES_DIR", "HUB_DISCLOSURE_THRESHOLD"):
        env.pop(var, None)
    return env


def hub(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`hub <args>`, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
