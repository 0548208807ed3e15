"""``hub check <org>`` for Salesforce: can we log in, and what would a load read?

Read-only and cheap (a handful of API requests): authenticates, confirms the configured API
version is offered, lists which objects and mapped fields the integration user can see, and
reports the remaining daily API allocation. Never prints personal data: names and counts only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connectors.errors import ConnectorError
from connectors.salesforce_npsp.client import (
    ApiAllocationReserveReached,
    SalesforceApiError,
    SalesforceClient,
    selectable_fields,
)
from connectors.salesforce_npsp.settings import Credentials, SalesforceSettings
from connectors.salesforce_npsp.source import PMM_PREFIX, object_specs


@dataclass
class ObjectCheck:
    """One object the connector would read."""

    resource: str
    sobject: str
    found: bool
    fields: int = 0
    records: int | None = None
    missing_mapped_fields: list[str] = field(default_factory=list)


@dataclass
class OrgCheck:
    """Everything ``hub check`` shows for a Salesforce member."""

    authenticated: bool
    api_version: str
    # None: not known, because the check stopped before the versions list (credentials,
    # an exhausted allocation...): never reported as "not offered".
    api_version_available: bool | None = None
    latest_api_version: str | None = None
    objects: list[ObjectCheck] = field(default_factory=list)
    api_used: int | None = None
    api_max: int | None = None
    problems: list[str] = field(default_factory=list)
    # Labels the org uses that the member's mappings must cover, by mapping name
    # (programmes, engagement_status, outcomes, outcome_status, absent_statuses).
    labels: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.authenticated and not self.problems


def check_org(
    settings: SalesforceSettings,
    credentials: Credentials,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> OrgCheck:
    """Run the check; connector errors become problems in the result instead of raising."""
    result = OrgCheck(authenticated=False, api_version=settings.api_version)
    with SalesforceClient(settings, credentials, sleep=sleep) as client:
        try:
            _ = client.token  # logs in: a refusal here is about credentials, not the version
            result.authenticated = True
            versions = [v["version"] for v in client.versions()]
            result.latest_api_version = max(versions, key=float) if versions else None
            result.api_version_available = settings.api_version in versions
            if not result.api_version_available:
                result.problems.append(
                    f"API version {settings.api_version} is not offered by this org "
                    f"(latest {result.latest_api_version}): change 'api_version'"
                )
            names = client.sobject_names()
            described: dict[str, dict[str, Any]] = {}
            for spec in object_specs(settings):
                check = ObjectCheck(spec.resource, spec.sobject, spec.sobject in names)
                result.objects.append(check)
                if not check.found:
                    if spec.sobject.startswith(PMM_PREFIX):
                        reason = "the Program Management Module is not installed or not granted"
                    else:
                        reason = "not visible to the integration user"
                    result.problems.append(f"{spec.resource}: {spec.sobject} missing ({reason})")
                    continue
                described[spec.sobject] = client.describe(spec.sobject)
                fields = selectable_fields(described[spec.sobject])
                check.fields = len(fields)
                check.missing_mapped_fields = [f for f in spec.mapped if f not in fields]
                for name in check.missing_mapped_fields:
                    result.problems.append(
                        f"{spec.resource}: the integration user cannot read field "
                        f"{spec.sobject}.{name}: grant field-level security or remove it from "
                        "the member's mapping"
                    )
                try:
                    check.records = client.record_count(spec.sobject)
                except SalesforceApiError:
                    check.records = None  # only an estimate; a load reads through REST then
            result.labels = _labels_in_use(client, settings, described)
        except ApiAllocationReserveReached as err:
            what = "exhausted" if err.exhausted else "at the member's reserve"
            usage = f" ({err.used}/{err.maximum} requests used)" if err.maximum else ""
            result.problems.append(
                f"the org's daily API allocation is {what}{usage}, so the check stopped "
                "there: nothing is wrong with the settings it did not reach. Loads and checks "
                "go on once the 24-hour window has room (or lower 'reserve_percent')."
            )
        except ConnectorError as err:
            result.problems.append(str(err))
        result.api_used, result.api_max = client.api_used, client.api_max
    return result


def _picklist(describe: dict[str, Any] | None, name: str | None) -> list[str] | None:
    """Active values of a picklist field; None when the field is not a picklist."""
    for f in (describe or {}).get("fields", []):
        if f["name"] == name and f.get("type") in ("picklist", "multipicklist"):
            return [v["value"] for v in f.get("picklistValues", []) if v.get("active", True)]
    return None


def _labels_in_use(
    client: SalesforceClient, settings: SalesforceSettings, described: dict[str, dict[str, Any]]
) -> dict[str, list[str]]:
    """What the mapping has to cover: Program names (a small object, read whole) and the
    picklist values of Stage, AttendanceStatus and the outcome object's label and status."""
    labels: dict[str, list[str]] = {}
    if "pmdm__Program__c" in described:
        soql = "SELECT Id, Name FROM pmdm__Program__c WHERE IsDeleted = false ORDER BY Id"
        labels["programmes"] = sorted(
            {r["Name"] for page in client.query_pages(soql) for r in page if r.get("Name")}
        )
    stages = _picklist(described.get("pmdm__ProgramEngagement__c"), "pmdm__Stage__c")
    if stages is not None:
        labels["engagement_status"] = stages
    attendance = _picklist(described.get("pmdm__ServiceDelivery__c"), "pmdm__AttendanceStatus__c")
    if attendance is not None:
        labels["attendance"] = attendance
    if settings.outcome is not None:
        outcome = described.get(settings.outcome.object)
        for role, name in (
            ("outcomes", settings.outcome.label_field),
            ("outcome_status", settings.outcome.status_field),
        ):
            values = _picklist(outcome, name)
            if values is not None:
                labels[role] = values
    return labels
