"""What a member's load is: its connector kind's raw assets, for its partition.

Shared by the sensors and the refresh schedule; each request selects the raw assets of the
member's own connector kind (all raw assets share the member partitions).
"""

import dagster as dg

from connectors.members import LOADED_CONNECTOR_KINDS
from pipelines.defs.ingest.civicrm import civicrm_raw
from pipelines.defs.ingest.salesforce import salesforce_raw
from pipelines.defs.ingest.spreadsheets import spreadsheet_raw

RAW_ASSETS: dict[str, dg.AssetsDefinition] = {
    "spreadsheet": spreadsheet_raw,
    "salesforce_npsp": salesforce_raw,
    "civicrm": civicrm_raw,
}
assert set(RAW_ASSETS) == set(LOADED_CONNECTOR_KINDS), "every loaded connector needs raw assets"

ALL_RAW = dg.AssetSelection.assets(*RAW_ASSETS.values())
"""Every raw asset: what the sensors and the schedule may request."""


def raw_keys(kind: str) -> list[dg.AssetKey]:
    """The raw asset keys one connector kind loads."""
    return sorted(RAW_ASSETS[kind].keys, key=lambda k: k.to_user_string())


def load_request(org: str, kind: str, *, run_key: str, trigger: str) -> dg.RunRequest:
    """A run loading one member's raw data (downstream follows by declarative automation)."""
    return dg.RunRequest(
        run_key=run_key,
        partition_key=org,
        asset_selection=raw_keys(kind),
        tags={"hub/trigger": trigger, "hub/member": org},
    )
