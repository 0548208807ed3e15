"""One member's assets materialised in this process, as `hub run` would run them.

``dg.materialize`` against an ephemeral instance: the cheap way to see what a run makes of a
load (held back or current, what canonical holds) without starting `hub run`.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import duckdb
from dagster_dlt import DagsterDltResource

from pipelines.lib.hub import HubResource
from pipelines.lib.members import MEMBERS
from pipelines.settings import HubSettings
from transforms.member_status import MemberStatus, member_statuses
from transforms.warehouse import DuckDBWarehouse


class MemberAssets:
    """Runs ``org``'s partition of the given assets; the hub's settings come from HUB_*."""

    def __init__(self, org: str) -> None:
        self.org = org
        self.settings = HubSettings.from_env()
        self.instance = dg.DagsterInstance.ephemeral()
        self.instance.add_dynamic_partitions(MEMBERS.name, [org])
        self.resources = {"hub": HubResource(), "dlt_resource": DagsterDltResource()}

    def run(self, *assets: Any) -> bool:
        """Whether the run of ``assets`` for the member succeeded."""
        return dg.materialize(
            list(assets),
            partition_key=self.org,
            instance=self.instance,
            resources=self.resources,
            raise_on_error=False,
        ).success

    def query(self, sql: str) -> list[tuple]:
        with duckdb.connect(str(self.settings.warehouse_path), read_only=True) as con:
            return con.execute(sql).fetchall()

    def status(self) -> MemberStatus | None:
        return member_statuses(DuckDBWarehouse(self.settings.warehouse_path)).get(self.org)
