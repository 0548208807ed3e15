"""The code location with each run's steps in the run's own process, for daemon-path tests.

A load run is one step; the default multiprocess executor starts a second interpreter for
it, which on a busy test machine cost a minute per run. (The project may set the in-process
executor itself: then this adds nothing.)
"""

from __future__ import annotations

import dagster as dg

import pipelines.definitions as project  # a module: one @definitions function in scope


@dg.definitions
def defs() -> dg.Definitions:
    """The project's definitions, with the in-process executor unless they name one."""
    base = project.defs()
    if base.executor is not None:
        return base
    return dg.Definitions.merge(base, dg.Definitions(executor=dg.in_process_executor))
