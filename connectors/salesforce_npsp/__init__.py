"""Salesforce Nonprofit Success Pack + Program Management Module connector.

``npsp_source`` is the dlt source (one ``merge`` resource per object, keyed on ``Id``),
``raw_pipeline`` the member's own pipeline, ``load_npsp`` runs one and reports what it
noticed. The loopback org the tests and the demo use is
``sandboxes.salesforce_npsp.SalesforceSandbox``.
"""

# Names load on first use (PEP 562): importing one submodule, such as the settings the member
# files need, must not pull in dlt and the whole source (the webhook receiver imports the
# member model and has to start in well under a second).
from __future__ import annotations

from connectors.lazy import lazy_getattr

_LAZY = {
    "SalesforceAuthError": "connectors.salesforce_npsp.auth",
    "ApiAllocationReserveReached": "connectors.salesforce_npsp.client",
    "SalesforceApiError": "connectors.salesforce_npsp.client",
    "SalesforceClient": "connectors.salesforce_npsp.client",
    "ClientCredentials": "connectors.salesforce_npsp.settings",
    "JwtBearerCredentials": "connectors.salesforce_npsp.settings",
    "OutcomeMapping": "connectors.salesforce_npsp.settings",
    "SalesforceSettings": "connectors.salesforce_npsp.settings",
    "SOURCE_NAME": "connectors.salesforce_npsp.source",
    "SyncReport": "connectors.salesforce_npsp.source",
    "load_npsp": "connectors.salesforce_npsp.source",
    "npsp_source": "connectors.salesforce_npsp.source",
    "object_specs": "connectors.salesforce_npsp.source",
    "raw_pipeline": "connectors.salesforce_npsp.source",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = [
    "SOURCE_NAME",
    "ApiAllocationReserveReached",
    "ClientCredentials",
    "JwtBearerCredentials",
    "OutcomeMapping",
    "SalesforceApiError",
    "SalesforceAuthError",
    "SalesforceClient",
    "SalesforceSettings",
    "SyncReport",
    "load_npsp",
    "npsp_source",
    "object_specs",
    "raw_pipeline",
]
