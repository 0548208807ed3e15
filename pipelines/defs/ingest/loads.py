"""What a member's load is: its connector kind's raw assets and its canonical partition.

Shared by the sensors and the refresh schedule; each request selects the raw assets of the
member's own connector kind (all raw assets share the member partitions) and the canonical
model, for the member's partition, in one run. Mapping right after the load in the same run
saves a declarative-automation hop and a run start (~10 s of a webhook's way to a release);
Dagster runs the mapping step only when every raw table it reads was materialised by the
load, so when the load fails, or skips an unchanged spreadsheet, the step is skipped and
automation maps the member as before (it sees the raw update and no mapping since).
Linkage and publication stay with automation, which coalesces members changing together
into one release.
"""

import dagster as dg

from connectors.members import LOADED_CONNECTOR_KINDS
from pipelines.defs.ingest.civicrm import civicrm_raw
from pipelines.defs.ingest.salesforce import salesforce_raw
from pipelines.defs.ingest.spreadsheets import spreadsheet_raw
from pipelines.defs.transform.canonical import canonical_model

RAW_ASSETS: dict[str, dg.AssetsDefinition] = {
    "spreadsheet": spreadsheet_raw,
    "salesforce_npsp": salesforce_raw,
    "civicrm": civicrm_raw,
}
assert set(RAW_ASSETS) == set(LOADED_CONNECTOR_KINDS), "every loaded connector needs raw assets"

ALL_RAW = dg.AssetSelection.assets(*RAW_ASSETS.values())
"""Every raw asset."""
CANONICAL = dg.AssetSelection.assets(canonical_model)
LOADS = ALL_RAW | CANONICAL
"""What the sensors and the schedule may request: loads and the mapping that follows."""


def raw_keys(kind: str) -> list[dg.AssetKey]:
    """The raw asset keys one connector kind loads."""
    return sorted(RAW_ASSETS[kind].keys, key=lambda k: k.to_user_string())


def load_keys(kind: str) -> list[dg.AssetKey]:
    """What a member's load run materialises: its kind's raw assets, then its canonical
    partition (the whole canonical model: one step, every member's tables)."""
    return [*raw_keys(kind), *sorted(canonical_model.keys, key=lambda k: k.to_user_string())]


def load_request(org: str, kind: str, *, run_key: str, trigger: str) -> dg.RunRequest:
    """A run loading one member's raw data and mapping it (linkage and publication follow
    by declarative automation)."""
    return dg.RunRequest(
        run_key=run_key,
        partition_key=org,
        asset_selection=load_keys(kind),
        tags={"hub/trigger": trigger, "hub/member": org},
    )
