"""Run the real `hub` command, but stop dead at a chosen point so a test can kill it there.

``python -m tests.pipelines.crash_harness POINT MARKER hub-args…`` patches one function of the
hub so that, when the run reaches POINT, it writes MARKER and sleeps; the test then sends
SIGKILL (or SIGTERM, SIGINT) to the process. Nothing in the hub itself knows about this.

Points (each in the middle of real work, with the Dagster run started, its pool slot held
and the warehouse open):
- ``load``: inside dlt's load step of the first member (extracted and normalised, not loaded);
- ``mapping``: inside a member's canonical rebuild, after its rows were deleted and some
  models inserted, before the transaction commits;
- ``linkage``: inside linkage's write, after person_link was replaced, before commit;
- ``publish``: inside the release writer, with every file staged, before validation and the
  rename that makes it visible.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

POINTS = ("load", "mapping", "linkage", "publish")


def _pause(marker: Path, point: str) -> None:
    marker.write_text(point, encoding="utf-8")
    time.sleep(3600)


def _patch(point: str, marker: Path) -> None:
    if point == "load":
        from dlt.pipeline.pipeline import Pipeline

        real_load = Pipeline.load

        def load(self: Any, *args: Any, **kwargs: Any) -> Any:
            _pause(marker, point)
            return real_load(self, *args, **kwargs)

        Pipeline.load = load  # type: ignore[method-assign]
    elif point == "mapping":
        import transforms.canonical as canonical

        real_insert = canonical._insert
        calls = {"n": 0}

        def insert(*args: Any, **kwargs: Any) -> int:
            calls["n"] += 1
            if calls["n"] == 3:
                _pause(marker, point)
            return real_insert(*args, **kwargs)

        canonical._insert = insert
    elif point == "linkage":
        import transforms.linkage as linkage

        real_append = linkage._append

        def append(session: Any, table: str, data: Any) -> None:
            real_append(session, table, data)
            if table == "person_link":
                _pause(marker, point)

        linkage._append = append
    elif point == "publish":
        import transforms.release as release

        def validate(descriptor: Path) -> list[str]:
            _pause(marker, point)
            return []

        release._validate = validate
    else:
        raise SystemExit(f"unknown point {point!r}; one of {POINTS}")


def main() -> None:
    point, marker, *args = sys.argv[1:]
    _patch(point, Path(marker))
    from pipelines.cli import app

    app(args, prog_name="hub")


if __name__ == "__main__":
    main()
