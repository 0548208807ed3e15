"""Settings for one member's Salesforce NPSP + PMM org, and the credentials it needs.

Settings are plain config (safe to keep in ``members/<org>.yaml``); credentials are passed in
already resolved by the caller from environment variables or a key file path, so the connector
itself never reads the environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutcomeMapping(_Strict):
    """Where a member records outcomes: PMM has no outcome object, so it is configured.

    ``fields`` maps the hub's outcome roles to the member's field API names.
    """

    object: str = "Outcome__c"
    contact_field: str = "Contact__c"
    program_field: str | None = "Program__c"
    label_field: str = "Outcome__c"
    status_field: str = "Status__c"
    measured_on_field: str = "Measured_On__c"
    value_field: str | None = "Value__c"

    def mapped_fields(self) -> list[str]:
        names = [
            self.contact_field,
            self.program_field,
            self.label_field,
            self.status_field,
            self.measured_on_field,
            self.value_field,
        ]
        return [n for n in names if n]


class SalesforceSettings(_Strict):
    """How to reach and read one org. Every limit has a safe default."""

    kind: Literal["salesforce_npsp"] = "salesforce_npsp"
    login_url: str = Field(
        description="Token endpoint host: https://login.salesforce.com, "
        "https://test.salesforce.com or the org's My Domain URL (client credentials needs it)."
    )
    instance_url: str | None = Field(
        default=None, description="Override the instance_url the token response returns."
    )
    api_version: str = "62.0"
    auth: Literal["client_credentials", "jwt_bearer"] = "client_credentials"
    client_id: str = Field(description="Connected app consumer key (not a secret).")
    username: str | None = Field(default=None, description="Integration user, for JWT bearer.")
    reserve_percent: float = Field(
        default=10.0,
        ge=0,
        lt=100,
        description="Stop before the daily API allocation falls below this share.",
    )
    lookback_seconds: int = Field(
        default=300,
        ge=0,
        description="Re-read this much before the cursor on every run (any value: the "
        "delete-log window is widened to the whole minutes Salesforce accepts).",
    )
    page_size: int = Field(default=2000, ge=200, le=2000, description="SOQL batchSize.")
    max_url_length: int = Field(default=16000, ge=1000, description="Split longer queries.")
    bulk_threshold: int | None = Field(
        default=50000,
        ge=1,
        description="Full loads of objects with at least this many records use Bulk API 2.0 "
        "query jobs; None always uses the REST query API.",
    )
    bulk_poll_seconds: float = Field(
        default=0.2, ge=0, description="Wait before the second job-status poll (then 1.5x each)."
    )
    bulk_timeout_seconds: float = Field(default=3600.0, gt=0, description="Give up on a job.")
    bulk_page_records: int = Field(default=50000, ge=1, description="maxRecords per result set.")
    full_refresh_days: int | None = Field(
        default=7,
        ge=1,
        description="Re-read everything this often (formula fields never bump SystemModstamp).",
    )
    reconcile_days: int | None = Field(
        default=1,
        ge=1,
        description="List every object's live ids this often (an id-only query) to find "
        "records deleted for good that the delete log no longer shows; a full read and an "
        "earliestDateAvailable past the last run also do it. None: only those.",
    )
    max_deleted_share: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Most of an object's loaded records one run may mark deleted because "
        "Salesforce no longer lists them (at least 10 are always allowed). More, or an empty "
        "listing, deletes nothing and holds the member: lost sharing or permissions look the "
        "same. Raise it (1 accepts anything) for one run after a deliberate mass deletion.",
    )
    removed_fields: tuple[str, ...] = Field(
        default=(),
        description="Fields ('Object.Field') deleted or hidden from the integration user on "
        "purpose: a load no longer waits for them to be readable again.",
    )
    start_date: str = Field(
        default="2000-01-01T00:00:00Z", description="Lower bound of the first, full load."
    )
    consent_field: str | None = "Consent_To_Share__c"
    outcome: OutcomeMapping | None = OutcomeMapping()
    objects: tuple[str, ...] | None = Field(
        default=None, description="Resource names to load; default all."
    )
    timeout_seconds: float = 60.0
    request_deadline: float = Field(
        default=120.0, gt=0, description="Seconds for a whole request, however slowly it trickles"
    )
    load_deadline: float = Field(
        default=7200.0,
        gt=0,
        description="Seconds for the member's whole load (every request, retry and backoff), "
        "so a server answering each request just in time cannot hold a load for ever",
    )
    max_retries: int = Field(default=5, ge=0)
    backoff_seconds: float = Field(default=1.0, ge=0)
    backoff_max_seconds: float = Field(default=60.0, ge=0)

    @field_validator("removed_fields")
    @classmethod
    def _object_dot_field(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if not re.fullmatch(r"\w+\.\w+", v)]
        if bad:
            raise ValueError(
                f"{len(bad)} entry(ies) not of the form 'Object.Field' (e.g. 'Contact.Birthdate')"
            )
        return value

    @field_validator("login_url", "instance_url")
    @classmethod
    def _safe_url(cls, value: str | None) -> str | None:
        from connectors.scope import url_problems

        if value is None:
            return value
        problems = url_problems(value)
        if problems:
            raise ValueError("; ".join(problems))
        return value


@dataclass(frozen=True)
class ClientCredentials:
    """OAuth 2.0 client-credentials flow: consumer key and secret of the connected app."""

    client_secret: str

    def __repr__(self) -> str:  # never print the secret
        return "ClientCredentials(client_secret=***)"


@dataclass(frozen=True)
class JwtBearerCredentials:
    """JWT bearer flow: the connected app's certificate's private key, PEM, from a file."""

    private_key_path: Path | None = None
    private_key_pem: str | None = None

    def __repr__(self) -> str:
        return f"JwtBearerCredentials(private_key_path={self.private_key_path!s})"

    def key(self) -> str:
        if self.private_key_pem:
            return self.private_key_pem
        if self.private_key_path is None:
            raise ValueError("JWT bearer needs a private key file path")
        return Path(self.private_key_path).read_text()


Credentials = ClientCredentials | JwtBearerCredentials
