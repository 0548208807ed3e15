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

# Names load on first use (PEP 562): importing one submodule, such as the settings the member
# files need, must not pull in dlt and the whole source (the webhook receiver imports the
# member model and has to start in well under a second).
from __future__ import annotations

from connectors.lazy import lazy_getattr

_LAZY = {
    "ApiResult": "connectors.civicrm.client",
    "CiviCRMClient": "connectors.civicrm.client",
    "CiviCRMError": "connectors.civicrm.client",
    "CiviCRMTransientError": "connectors.civicrm.client",
    "ProbeReport": "connectors.civicrm.client",
    "api_url": "connectors.civicrm.client",
    "CiviCRMSettings": "connectors.civicrm.settings",
    "OutcomeFields": "connectors.civicrm.settings",
    "civicrm_source": "connectors.civicrm.source",
    "raw_pipeline": "connectors.civicrm.source",
    "resource_names": "connectors.civicrm.source",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


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
