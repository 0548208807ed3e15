"""CiviCRM connector: APIv4 over REST -> raw tables via dlt.

Public API:
- ``CiviCRMSettings``: the member's connector settings (site URL, URL style, paging, ...).
- ``civicrm_source(settings, api_key, site_key=None, reconcile=None)``: the dlt source.
- ``raw_pipeline(org_id, destination, pipelines_dir)``: the member's own dlt pipeline.
- ``CiviCRMClient``: the REST client (``probe()`` feeds ``hub check``).
- ``HiddenFieldsError`` (``connectors.civicrm.fields``): a selected field CiviCRM left out
  (the API user may not see it); the load fails before anything is written.
The loopback CiviCRM the tests and the demo use is ``sandboxes.civicrm.CiviCRMSandbox``.
"""

from __future__ import annotations

from connectors.civicrm.client import (
    ApiResult,
    CiviCRMClient,
    CiviCRMError,
    CiviCRMTransientError,
    ProbeReport,
    api_url,
)
from connectors.civicrm.settings import CiviCRMSettings, OutcomeFields
from connectors.civicrm.source import civicrm_source, raw_pipeline, resource_names

__all__ = [
    "ApiResult",
    "CiviCRMClient",
    "CiviCRMError",
    "CiviCRMSettings",
    "CiviCRMTransientError",
    "OutcomeFields",
    "ProbeReport",
    "api_url",
    "civicrm_source",
    "raw_pipeline",
    "resource_names",
]
