"""Resource bindings for the whole code location."""

import dagster as dg
from dagster_dlt import DagsterDltResource

from pipelines.lib.hub import HubResource


@dg.definitions
def resources() -> dg.Definitions:
    """The hub's paths and policies (from HUB_* variables at run time) and the dlt runner."""
    return dg.Definitions(resources={"hub": HubResource(), "dlt_resource": DagsterDltResource()})
