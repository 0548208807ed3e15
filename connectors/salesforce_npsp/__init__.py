"""Salesforce Nonprofit Success Pack + Program Management Module connector.

``npsp_source`` is the dlt source (one ``merge`` resource per object, keyed on ``Id``),
``raw_pipeline`` the member's own pipeline, ``load_npsp`` runs one and reports what it
noticed. The loopback org the tests and the demo use is
``sandboxes.salesforce_npsp.SalesforceSandbox``.
"""

from connectors.salesforce_npsp.auth import SalesforceAuthError
from connectors.salesforce_npsp.client import (
    ApiAllocationReserveReached,
    SalesforceApiError,
    SalesforceClient,
)
from connectors.salesforce_npsp.settings import (
    ClientCredentials,
    JwtBearerCredentials,
    OutcomeMapping,
    SalesforceSettings,
)
from connectors.salesforce_npsp.source import (
    SOURCE_NAME,
    SyncReport,
    load_npsp,
    npsp_source,
    object_specs,
    raw_pipeline,
)

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
