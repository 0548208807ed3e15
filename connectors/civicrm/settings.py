"""Settings for one member's CiviCRM connection (the ``connector:`` block of its YAML).

The API key is not here: the member config holds only a reference to it, the caller resolves
that reference and passes the key to the connector, so the connector never reads secrets from
the environment and a settings object can be logged safely.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

UrlStyle = Literal["clean", "wordpress", "wordpress_admin", "standalone"]

ENTITY_KEYS = (
    "contact",
    "email",
    "phone",
    "address",
    "case",
    "case_contact",
    "activity",
    "activity_contact",
    "contribution",
)


class OutcomeFields(BaseModel):
    """Which Activity custom fields hold an outcome (names as APIv4 spells them).

    Option fields may carry a suffix (``Outcomes.status:name``) so the raw table holds the
    option's machine name, which the member's label mappings then translate.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: str = "Outcomes.outcome:name"
    status: str | None = "Outcomes.status:name"
    value: str | None = "Outcomes.value"


class CiviCRMSettings(BaseModel):
    """How to reach and read one CiviCRM site; every knob has a safe default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["civicrm"] = "civicrm"
    site_url: str = Field(description="Base URL of the CMS site, e.g. https://crm.example.org")
    url_style: UrlStyle = Field(
        "clean",
        description="clean (Drupal/Backdrop/Joomla with clean URLs), wordpress (?civiwp=), "
        "wordpress_admin (/wp-admin/admin.php?page=CiviCRM), standalone",
    )
    page_size: int = Field(1000, ge=1, le=25000)
    reconcile_page_size: int = Field(
        50000,
        ge=1,
        le=100000,
        description="Ids per page when listing ids for hard deletes (ids only, so pages can be "
        "large: fewer requests, each of which costs a CMS bootstrap on a real site)",
    )
    lookback_seconds: int = Field(
        3600, ge=0, description="Re-read this much before the last cursor (clock skew, commits)"
    )
    reconcile_every_runs: int = Field(
        24,
        ge=1,
        description="List and compare every table's ids for hard deletes every N runs (1 = "
        "every run). Contacts deleted for good are found on every run whatever this says "
        "(a count; only when it disagrees, counts over id ranges to narrow down where, and "
        "a listing of the differing ranges' ids), and their e-mail, "
        "phone and address rows leave in the same run; this bounds how long a deleted "
        "case, activity, contribution or lone e-mail row can linger",
    )
    max_deleted_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Most of a table's loaded records one run may mark deleted (at least 10 "
        "are always allowed). An empty answer, or more, deletes nothing and warns: CiviCRM "
        "answers a lost permission or ACL with fewer rows, not an error. Raise it (1 accepts "
        "anything, even an empty answer) for one run after a deliberate mass deletion",
    )
    include_trashed: bool = Field(
        True,
        description="Read trashed contacts as deletions (needs 'access deleted contacts'). "
        "When off, or without that permission (CiviCRM then hides trashed contacts rather "
        "than refusing), a trashed contact vanishes from the API and is marked "
        "deleted_in_source by the next run's count",
    )
    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(60.0, gt=0)
    request_deadline: float = Field(
        120.0, gt=0, description="Seconds for a whole request, however slowly it trickles"
    )
    load_deadline: float = Field(
        7200.0,
        gt=0,
        description="Seconds for the member's whole load (every request, retry and backoff), "
        "so a server answering each request just in time cannot hold a load for ever",
    )
    max_retries: int = Field(4, ge=0, le=10)
    backoff_seconds: float = Field(1.0, ge=0)
    consent_field: str | None = Field("Consent.share_data", description="Contact field")
    outcome_fields: OutcomeFields | None = OutcomeFields()
    phone_region: str = Field(
        "GB", min_length=2, max_length=2, description="For E.164 in the canonical SQL, not here"
    )
    entities: tuple[str, ...] = Field(
        ENTITY_KEYS, description="Which raw tables to load (civicrm__<entity>)"
    )

    @field_validator("site_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        from connectors.scope import url_problems

        problems = url_problems(value)
        if problems:
            raise ValueError("; ".join(problems))
        return value.rstrip("/")

    @field_validator("entities")
    @classmethod
    def _known_entities(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [e for e in value if e not in ENTITY_KEYS]
        if unknown:
            raise ValueError(f"unknown entities {unknown}; choose from {list(ENTITY_KEYS)}")
        return value
