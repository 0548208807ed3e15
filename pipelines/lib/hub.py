"""The ``hub`` resource: member registry, warehouse and paths, resolved at run time."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import dagster as dg
from pydantic import Field

from connectors.members import Member, MemberRegistry, load_members
from pipelines.lib.openlineage import LineageRun, lineage_run
from pipelines.settings import HubSettings
from transforms.warehouse import DuckDBWarehouse


class HubResource(dg.ConfigurableResource):
    """Where members, warehouse and releases live. Empty fields fall back to HUB_* variables."""

    home: str = Field(default="", description="the hub's own folder (HUB_HOME)")
    members_dir: str = Field(default="", description="folder of members/<org>.yaml files")
    warehouse_path: str = Field(default="", description="DuckDB warehouse file")
    pipelines_dir: str = Field(default="", description="dlt's working folder")
    releases_dir: str = Field(default="", description="where published releases are written")
    disclosure_threshold: int = Field(default=0, description="0 means HUB_DISCLOSURE_THRESHOLD")

    def settings(self) -> HubSettings:
        """Effective settings: explicit fields win over the environment."""
        env = HubSettings.from_env()
        return HubSettings(
            home=Path(self.home).resolve() if self.home else env.home,
            members_dir=Path(self.members_dir).resolve() if self.members_dir else env.members_dir,
            warehouse_path=(
                Path(self.warehouse_path).resolve() if self.warehouse_path else env.warehouse_path
            ),
            pipelines_dir=(
                Path(self.pipelines_dir).resolve() if self.pipelines_dir else env.pipelines_dir
            ),
            releases_dir=(
                Path(self.releases_dir).resolve() if self.releases_dir else env.releases_dir
            ),
            disclosure_threshold=self.disclosure_threshold or env.disclosure_threshold,
        )

    def registry(self) -> MemberRegistry:
        """Every member file, read now (a file edited since load is seen at the next run)."""
        return load_members(self.settings().members_dir)

    def member(self, org_id: str) -> Member:
        """One member, or a Failure explaining what is wrong with its file."""
        try:
            return self.registry().get(org_id)
        except Exception as err:
            raise dg.Failure(description=str(err), allow_retries=False) from err

    def lineage(
        self,
        context: dg.AssetExecutionContext,
        inputs: list[str] | tuple[str, ...] = (),
        outputs: list[str] | tuple[str, ...] = (),
    ) -> AbstractContextManager[LineageRun]:
        """OpenLineage START/COMPLETE/FAIL events around one asset step."""
        settings = self.settings()
        return lineage_run(
            context,
            home=settings.home,
            warehouse=f"duckdb://{settings.warehouse_path}",
            inputs=inputs,
            outputs=outputs,
        )

    def warehouse(self) -> DuckDBWarehouse:
        """The warehouse (an embedded DuckDB file)."""
        return DuckDBWarehouse(self.settings().warehouse_path)
