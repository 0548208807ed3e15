"""Asset keys for dlt resources: ``raw/<resource name>``, e.g. ``raw/spreadsheet__person``."""

from __future__ import annotations

import dagster as dg
from dagster_dlt import DagsterDltTranslator
from dagster_dlt.translator import DltResourceTranslatorData


class RawTranslator(DagsterDltTranslator):
    """Every dlt resource lands in the ``raw`` layer under its own name."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        """Key ``raw/<resource>``; the member is the partition, not part of the key."""
        return (
            super()
            .get_asset_spec(data)
            .replace_attributes(key=dg.AssetKey(["raw", data.resource.name]), deps=[])
        )
