"""Member organisation configuration: ``members/<org>.yaml``, validated on load.

One small YAML file per member says which connector to use, where its data is, how consent
is recorded and how the member's own labels map onto the shared taxonomy. Every mistake is
reported with the file, the key and the fix, all at once, so a member fixes a file in one pass.
Credentials never appear inline: only as references to environment variables or key files.
"""

from __future__ import annotations

import difflib
import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from connectors.civicrm.settings import CiviCRMSettings
from connectors.errors import MemberConfigError
from connectors.locations import Location, location_problems, parse_location
from connectors.salesforce_npsp.settings import (
    ClientCredentials,
    Credentials,
    JwtBearerCredentials,
    SalesforceSettings,
)
from connectors.taxonomy import Taxonomy, load_taxonomy

ORG_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,39}$")

# Canonical fields a spreadsheet column can be mapped to, per canonical entity.
# ``required`` fields must be mapped; the rest are optional.
ENTITY_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "person": {
        "required": ("source_id",),
        "optional": (
            "given_name",
            "family_name",
            "birth_date",
            "email",
            "phone",
            "postcode",
            "consent_to_share",
            "updated_at",
        ),
    },
    "engagement": {
        "required": ("person_source_id", "programme", "status", "start_date"),
        "optional": ("source_id", "end_date", "updated_at"),
    },
    "service_delivery": {
        "required": ("person_source_id", "programme", "delivered_on"),
        "optional": ("source_id", "service_name", "quantity", "unit", "updated_at"),
    },
    "outcome": {
        "required": ("person_source_id", "outcome", "status", "measured_on"),
        "optional": ("source_id", "programme", "value", "updated_at"),
    },
}

CONNECTOR_KINDS = ("spreadsheet", "salesforce_npsp", "civicrm")
# Kinds whose raw data the hub loads. Salesforce and CiviCRM raw data load; their mapping onto
# the canonical model is the rest of issues #3 and #4 (until then they add no canonical rows).
LOADED_CONNECTOR_KINDS = ("spreadsheet", "salesforce_npsp", "civicrm")

DEFAULT_CONSENT_YES = ("yes", "y", "true", "t", "1", "x", "consented", "agreed")
DEFAULT_CONSENT_NO = ("no", "n", "false", "f", "0", "declined", "withdrawn", "refused")


def normalise_label(label: str) -> str:
    """Case- and space-insensitive form of a label or column header."""
    return " ".join(str(label).split()).casefold()


def header_key(header: str) -> str:
    """A column header as people mean it: case, spaces, underscores, hyphens and other
    punctuation ignored, so 'first_name', 'FIRSTNAME' and 'First Name' are one header.

    Why: the same export comes out of Excel, a CRM report and a database dump with its
    headers spelled differently. A header of punctuation only keeps its plain form.
    """
    text = unicodedata.normalize("NFKC", str(header)).casefold()
    key = "".join(ch for ch in text if ch.isalnum())
    return key or normalise_label(header)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(_Strict):
    """A reference to a secret: an environment variable or a key file, never the value."""

    env: str | None = None
    file: Path | None = None
    # The member whose secret this is, set when the member file is loaded: resolving checks
    # the reference is still that member's own (connectors.scope), e.g. after a symlink
    # changed.
    _org_id: str | None = PrivateAttr(default=None)
    _other_ids: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _one_of(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env: VARIABLE_NAME' or 'file: /path/to/key'")
        return self

    def scope_problem(self, org_id: str) -> str | None:
        """Why this reference is not one of ``org_id``'s own secrets, or None."""
        from connectors.scope import env_problem, file_problem

        if self.env is not None:
            return env_problem(org_id, self.env, self._other_ids)
        return file_problem(org_id, self._path(org_id))

    def _path(self, org_id: str | None) -> Path:
        """The key file; a relative name is inside the member's secrets folder."""
        from connectors.scope import secrets_dir

        assert self.file is not None
        if self.file.is_absolute() or org_id is None:
            return self.file
        return secrets_dir(org_id) / self.file

    def checked_file(self) -> Path:
        """The key file, after checking it is still inside its member's secrets folder."""
        self._check_scope()
        return self._path(self._org_id)

    def bind(self, org_id: str, other_ids: tuple[str, ...] = ()) -> None:
        """Tie the reference to its member (done when the member file is loaded), and note
        the other members beside it, whose variables it must not reach."""
        self._org_id = org_id
        self._other_ids = other_ids

    def _check_scope(self) -> None:
        if self._org_id is not None and (problem := self.scope_problem(self._org_id)):
            raise MemberConfigError(self._org_id, [problem])

    def __repr__(self) -> str:
        return f"SecretRef(env={self.env!r})" if self.env else f"SecretRef(file={self.file!s})"

    def resolve(self) -> str:
        """Read the secret at run time (never at import or definition load)."""
        self._check_scope()
        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise MemberConfigError(
                    "environment", [f"environment variable {self.env} is not set; export it"]
                )
            return value
        path = self.checked_file()
        where = self._org_id or "secrets"
        if not path.is_file():  # a pipe would block, a device never end
            raise MemberConfigError(
                where, [f"key file {path.name} is missing or not a regular file; put the key in it"]
            )
        with path.open("rb") as handle:  # a key is short; never read a huge file whole
            raw = handle.read(MAX_KEY_FILE_BYTES + 1)
        if len(raw) > MAX_KEY_FILE_BYTES:
            raise MemberConfigError(
                where, [f"key file {path.name} is over {MAX_KEY_FILE_BYTES} bytes: not a key"]
            )
        try:
            return raw.decode("utf-8").strip()
        except UnicodeDecodeError as err:
            raise MemberConfigError(
                where, [f"key file {path.name} is not UTF-8 text; save the key as plain text"]
            ) from err


# A key, token or PEM private key is a few KB at most.
MAX_KEY_FILE_BYTES = 64 * 1024


# Bounds on what a member's (untrusted) spreadsheet settings may hold.
MAX_NULL_VALUES = 50
MAX_FILES_PER_TABLE = 120  # ten years of monthly exports
GLOB_CHARS = frozenset("*?")  # '[' stays a plain character: 'people [final].csv' is a name


def is_glob(path: Path) -> bool:
    """Whether a table's ``file`` names several files (sessions-*.csv)."""
    return any(ch in GLOB_CHARS for ch in path.name)


MAX_SETTING_CHARS = 200
DefaultValue = Annotated[str, Field(max_length=MAX_SETTING_CHARS)] | int | float | bool
# Fields no default can stand for: a constant id would make every row the same record.
NO_DEFAULT_FIELDS = frozenset({"source_id", "person_source_id"})


class SpreadsheetTable(_Strict):
    """One spreadsheet (or one sheet of a workbook) holding one canonical entity."""

    file: Path = Field(
        description="CSV or XLSX path, relative to the member's YAML file; a pattern such as "
        "sessions-*.csv in its last part names several files (monthly exports), each "
        "loaded and reloaded on its own"
    )
    sheet: str | None = Field(default=None, description="XLSX sheet name; default: first sheet")
    header_row: int | None = Field(
        default=None, ge=1, description="1-based header row; default: found by the mapped headers"
    )
    encoding: str | None = Field(default=None, description="CSV encoding; default: detected")
    delimiter: str | None = Field(default=None, description="CSV delimiter; default: sniffed")
    columns: dict[str, str] = Field(
        description="canonical field -> header in the file", max_length=60
    )
    required: tuple[str, ...] = Field(
        default=(),
        max_length=20,
        description="fields every row must have, beyond those the model needs (a row "
        "without one is rejected)",
    )
    defaults: dict[str, DefaultValue] = Field(
        default_factory=dict,
        max_length=20,
        description="field -> value: for a field the file has no column for, every row's "
        "value (a single-programme member's deliveries); for a mapped field, the value of "
        "its blank cells",
    )
    decimal_separator: Literal[".", ","] | None = Field(
        default=None, description="overrides connector.decimal_separator for this file"
    )


class SpreadsheetConnector(_Strict):
    """Settings for members who send CSV or XLSX files."""

    kind: Literal["spreadsheet"]
    date_order: Literal["day_first", "month_first"] | None = Field(
        default=None,
        description="how to read dates like 03/04/2025; ISO dates and Excel date cells "
        "never need it, and an ambiguous date without it is quarantined, never guessed",
    )
    phone_region: str = Field(default="GB", description="region for numbers without +country")
    decimal_separator: Literal[".", ","] | None = Field(
        default=None,
        description="how the member's files write decimals (1.5 or 1,5); without it a number "
        "such as 1,234 is read from the column's other values, or quarantined, never guessed",
    )
    null_values: tuple[Annotated[str, Field(max_length=MAX_SETTING_CHARS)], ...] = Field(
        default=(),
        max_length=MAX_NULL_VALUES,
        description="cell contents that mean 'no value' in this member's files (N/A, -, "
        "unknown...): read as blank, case-insensitively",
    )
    tables: dict[str, SpreadsheetTable] = Field(max_length=10)
    location: str | None = Field(
        default=None,
        max_length=1000,
        description="where the files are, when not beside the YAML file: a folder inside "
        "the member's data folder, or s3://bucket/prefix/, gs://bucket/prefix/, "
        "az://container/prefix/; each table's file is then named relative to it "
        "(connectors/locations.py)",
    )
    location_options: dict[str, SecretRef | Annotated[str, Field(max_length=MAX_SETTING_CHARS)]] = (
        Field(
            default_factory=dict,
            max_length=10,
            description="for a bucket location: the member's own credentials as references "
            "(key/secret, account_key, a key file) and plain settings (region, account_name, "
            "endpoint_url); without credentials the environment's default chain is used",
        )
    )


class SalesforceConnector(SalesforceSettings):
    """Salesforce NPSP + PMM settings, plus references to the credentials (never values)."""

    client_secret: SecretRef | None = Field(
        default=None, description="client credentials flow: the connected app's secret"
    )
    private_key: SecretRef | None = Field(
        default=None, description="JWT bearer flow: the connected app certificate's key (PEM)"
    )
    phone_region: str = Field(default="GB", description="region for numbers without +country")
    absent_statuses: tuple[str, ...] = Field(
        default=("Absent", "Excused Absence", "Unexcused Absence"),
        description="pmdm__AttendanceStatus__c values meaning nothing was delivered: such "
        "deliveries are set aside as skipped, not counted",
    )

    @model_validator(mode="after")
    def _credentials_for_flow(self) -> SalesforceConnector:
        if self.auth == "client_credentials" and self.client_secret is None:
            raise ValueError(
                "auth 'client_credentials' needs 'client_secret: {env: VARIABLE_NAME}'"
            )
        if self.auth == "jwt_bearer" and (self.private_key is None or not self.username):
            raise ValueError(
                "auth 'jwt_bearer' needs 'username' and 'private_key: {file: /path/to/key.pem}'"
            )
        return self

    def settings(self) -> SalesforceSettings:
        """The connector's own settings (what is safe to log)."""
        return SalesforceSettings(
            **self.model_dump(
                exclude={"client_secret", "private_key", "phone_region", "absent_statuses"}
            )
        )

    def credentials(self) -> Credentials:
        """Resolve the secret at run time (never at import or definition load)."""
        if self.auth == "jwt_bearer":
            assert self.private_key is not None
            if self.private_key.file is not None:
                return JwtBearerCredentials(private_key_path=self.private_key.checked_file())
            return JwtBearerCredentials(private_key_pem=self.private_key.resolve())
        assert self.client_secret is not None
        return ClientCredentials(self.client_secret.resolve())


class CiviCRMConnector(CiviCRMSettings):
    """CiviCRM APIv4 settings, plus references to the API key and optional site key."""

    api_key: SecretRef = Field(description="the CiviCRM user's API key: {env: VARIABLE_NAME}")
    site_key: SecretRef | None = Field(default=None, description="CIVICRM_SITE_KEY, if required")
    delivery_activity_types: tuple[str, ...] = Field(
        default=("Meeting", "Phone Call"),
        description="activity types (names) that are help delivered to their target "
        "contacts; others (Open Case, Email, ...) are not counted",
    )
    delivered_statuses: tuple[str, ...] = Field(
        default=("Completed",),
        description="activity statuses meaning it took place (a Scheduled one has not yet)",
    )

    def settings(self) -> CiviCRMSettings:
        """The connector's own settings (what is safe to log)."""
        return CiviCRMSettings(
            **self.model_dump(
                exclude={"api_key", "site_key", "delivery_activity_types", "delivered_statuses"}
            )
        )


ConnectorSettings = Annotated[
    SpreadsheetConnector | SalesforceConnector | CiviCRMConnector, Field(discriminator="kind")
]


class Sharing(_Strict):
    """The member's sharing policy."""

    consent: Literal["per_record", "all", "none"] = Field(
        default="per_record",
        description="per_record: read each person's consent column (missing means no); "
        "all: the member holds consent to share for everyone who has not answered (a "
        "blank or missing answer counts as yes; an explicit no stays no); none: never share",
    )
    consent_yes: tuple[str, ...] = DEFAULT_CONSENT_YES
    consent_no: tuple[str, ...] = DEFAULT_CONSENT_NO


class Mappings(_Strict):
    """The member's local labels -> shared taxonomy values (matched case/space-insensitively)."""

    programmes: dict[str, str] = Field(
        default_factory=dict, description="programme name -> outcome area"
    )
    engagement_status: dict[str, str] = Field(default_factory=dict)
    outcomes: dict[str, str] = Field(default_factory=dict, description="label -> outcome code")
    outcome_status: dict[str, str] = Field(default_factory=dict)


class Events(_Strict):
    """How the member's systems tell the hub that something changed (issue #20).

    Each door is closed until its secret is configured: the receiver answers 404 for a
    member without ``webhook_secret`` (or without ``outbound_message_token``), so a member
    that never asked for events cannot be sent any.
    """

    webhook_secret: SecretRef | None = Field(
        default=None,
        description="Standard Webhooks secret ('whsec_' + base64) that signs the member's "
        "webhooks (CiviCRM, a Salesforce CDC relay): {env: HUB_<ORG>_WEBHOOK_SECRET}",
    )
    outbound_message_token: SecretRef | None = Field(
        default=None,
        description="Salesforce Outbound Messages: the secret part of the endpoint URL "
        "(16+ letters, digits, '-' or '_'): {env: HUB_<ORG>_OM_TOKEN}",
    )
    organization_id: str | None = Field(
        default=None,
        max_length=18,
        description="Salesforce: the org id (00D..., 15 or 18 characters) that Outbound "
        "Messages must carry",
    )


class Member(_Strict):
    """A member organisation, as its YAML file describes it."""

    org_id: str
    name: str
    connector: ConnectorSettings
    sharing: Sharing = Sharing()
    mappings: Mappings = Mappings()
    events: Events = Events()
    config_path: Path
    # A remote location's files are read from a copy in the hub's cache: the folder of that
    # copy, set by connectors.spreadsheets.remote.sync_location (None until then).
    _cache_dir: Path | None = PrivateAttr(default=None)

    @field_validator("org_id")
    @classmethod
    def _org_id(cls, value: str) -> str:
        if not ORG_ID_PATTERN.match(value):
            raise ValueError(
                f"'{value}' is not a valid organisation id: use 2-40 lower-case letters, digits "
                "or underscores, starting with a letter "
                "(rename the file, e.g. members/acme_trust.yaml)"
            )
        return value

    @property
    def base_dir(self) -> Path:
        """Folder that relative file paths in the config are resolved against."""
        return self.config_path.parent

    @property
    def location(self) -> Location | None:
        """Where a spreadsheet member's files are, when ``connector.location`` says."""
        text = getattr(self.connector, "location", None)
        return None if text is None else parse_location(text, self.base_dir)

    @property
    def files_dir(self) -> Path:
        """The folder relative file names start from: the YAML file's folder, a local
        ``connector.location``, or the cache holding a remote location's copy."""
        location = self.location
        if location is None:
            return self.base_dir
        if location.folder is not None:
            return location.folder
        if self._cache_dir is None:
            raise MemberConfigError(
                self.org_id,
                [
                    f"its files are at {location.url()}: they are read from the hub's copy, "
                    "made by connectors.spreadsheets.remote.sync_location (a load or `hub "
                    "check` makes it)"
                ],
            )
        return self._cache_dir

    @property
    def files_root(self) -> Path:
        """The root a data file must lie under (in a folder named after the member): the
        members' data root, or the hub's cache for a remote location's copy."""
        from connectors.scope import data_root

        location = self.location
        if location is not None and location.remote:
            return self.files_dir.parent
        return data_root(self.base_dir)

    def resolve(self, path: Path) -> Path:
        """Absolute path of a file named in the config."""
        return path if path.is_absolute() else (self.files_dir / path).resolve()

    @property
    def raw_dataset(self) -> str:
        """Warehouse schema holding this member's raw loads."""
        return f"raw_{self.org_id}"


def _loc(parts: Iterable[Any]) -> str:
    return ".".join(str(p) for p in parts if not str(p).startswith("function-after"))


def _shared_start(a: str, b: str) -> int:
    """How many leading characters two words share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _suggest(word: str, options: Iterable[str]) -> str:
    """A 'did you mean' hint: the closest spelling, else the longest shared beginning."""
    options = [str(o) for o in options]
    close = difflib.get_close_matches(str(word), options, n=1, cutoff=0.6)
    if not close and options:
        lower = str(word).lower()
        shared = {o: _shared_start(lower, o.lower()) for o in options}
        best = max(shared, key=lambda o: shared[o])
        close = [best] if shared[best] >= 4 else []
    return f" (did you mean '{close[0]}'?)" if close else ""


_KNOWN_KEYS = {
    "": ("name", "connector", "sharing", "mappings", "events", "org_id"),
    "connector": tuple(
        {
            *SpreadsheetConnector.model_fields,
            *SalesforceConnector.model_fields,
            *CiviCRMConnector.model_fields,
        }
    ),
    "sharing": ("consent", "consent_yes", "consent_no"),
    "mappings": ("programmes", "engagement_status", "outcomes", "outcome_status"),
    "events": tuple(Events.model_fields),
    "table": (
        "file",
        "sheet",
        "header_row",
        "encoding",
        "delimiter",
        "columns",
        "required",
        "defaults",
        "decimal_separator",
    ),
}


def _explain(err: dict[str, Any]) -> str:
    loc = [p for p in err["loc"] if not str(p).startswith("function-") and p not in CONNECTOR_KINDS]
    key = _loc(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = (
            "table"
            if len(loc) == 4 and loc[0] == "connector" and loc[1] == "tables"
            else (str(loc[0]) if len(loc) > 1 else "")
        )
        hint = _suggest(loc[-1], _KNOWN_KEYS.get(parent, ()))
        return f"key '{key}': unknown key{hint}; remove it or fix its spelling"
    if kind == "missing":
        return f"key '{key}': required but missing; add it"
    if kind == "union_tag_invalid" or (kind == "literal_error" and loc and loc[-1] == "kind"):
        return (
            f"key '{key or 'connector.kind'}': unknown connector kind; use one of "
            f"{', '.join(CONNECTOR_KINDS)}"
        )
    if kind == "union_tag_not_found":
        return f"key '{key}.kind': required but missing; use one of {', '.join(CONNECTOR_KINDS)}"
    return f"key '{key}': {err['msg']}"


def _secret_refs(connector: Any) -> list[tuple[str, SecretRef]]:
    """The connector's secret references with their keys."""
    refs = []
    for name in ("api_key", "site_key", "client_secret", "private_key"):
        ref = getattr(connector, name, None)
        if isinstance(ref, SecretRef):
            refs.append((name, ref))
    for name, ref in (getattr(connector, "location_options", None) or {}).items():
        if isinstance(ref, SecretRef):
            refs.append((f"location_options.{name}", ref))
    return refs


def _scope_problems(
    section: str,
    refs: list[tuple[str, SecretRef]],
    member: Member,
    other_ids: tuple[str, ...],
) -> list[str]:
    """Bind each secret reference of a section to the member; why any is not its own."""
    problems: list[str] = []
    for name, ref in refs:
        ref.bind(member.org_id, other_ids)
        if problem := ref.scope_problem(member.org_id):
            kind = "env" if ref.env is not None else "file"
            problems.append(f"key '{section}.{name}.{kind}': {problem}")
    return problems


def event_secret_refs(events: Events) -> list[tuple[str, SecretRef]]:
    """The member's event secrets (webhook secret, Outbound Message token) with their keys."""
    return [
        (name, ref)
        for name in ("webhook_secret", "outbound_message_token")
        if isinstance(ref := getattr(events, name), SecretRef)
    ]


def _check_events(member: Member, other_ids: tuple[str, ...]) -> list[str]:
    """The ``events:`` section: its secrets are the member's own; Outbound Messages need the
    Salesforce org id they must carry, and only a Salesforce member sends them."""
    from connectors.salesforce_npsp.ids import id15

    problems: list[str] = []
    events = member.events
    problems += _scope_problems("events", event_secret_refs(events), member, other_ids)
    org = events.organization_id
    if org is not None and (id15(org) is None or not org.startswith("00D")):
        problems.append(
            "key 'events.organization_id': not a Salesforce org id; copy the 15- or "
            "18-character id starting with 00D from Setup > Company Information"
        )
    if events.outbound_message_token is not None:
        if member.connector.kind != "salesforce_npsp":
            problems.append(
                "key 'events.outbound_message_token': only a Salesforce member sends Outbound "
                "Messages; remove it, or use events.webhook_secret"
            )
        elif org is None:
            problems.append(
                "key 'events.organization_id': required with outbound_message_token (the "
                "receiver accepts Outbound Messages only from this org); add the 00D... id"
            )
    return problems


def _table_file_problem(
    member: Member,
    file: Path,
    location_ok: bool,
    remote: bool,
    root: Path,
    other_ids: tuple[str, ...],
) -> str | None:
    """Why a table's ``file`` is not the member's to read: named relative to a remote
    location, or a file in the member's own data folder."""
    from connectors.locations import relative_file_problem
    from connectors.scope import data_file_problem

    if not location_ok:
        return None  # the location's own problem is reported; files cannot be placed
    if remote:
        return relative_file_problem(file)
    return data_file_problem(member.org_id, member.resolve(file), root, other_ids)


def _check_semantics(
    member: Member, taxonomy: Taxonomy, other_ids: tuple[str, ...] = ()
) -> list[str]:
    """Cross-field checks pydantic cannot express: fields, taxonomy values, secrets."""
    problems: list[str] = []
    conn = member.connector
    problems += _scope_problems("connector", _secret_refs(conn), member, other_ids)
    problems += _check_events(member, other_ids)
    if isinstance(conn, SpreadsheetConnector):
        if "person" not in conn.tables:
            problems.append(
                "key 'connector.tables': no 'person' table; every member needs one "
                "(add connector.tables.person with file and columns)"
            )
        from connectors.scope import data_root

        root = data_root(member.base_dir)
        location_ok = True
        if conn.location is not None:
            found = location_problems(
                conn.location,
                member.org_id,
                member.base_dir,
                root,
                conn.location_options,
                other_ids,
            )
            problems.extend(found)
            location_ok = not found
        elif conn.location_options:
            problems.append(
                "key 'connector.location_options': options without connector.location; "
                "remove them, or set location"
            )
        remote = location_ok and member.location is not None and member.location.remote
        for entity, table in conn.tables.items():
            if any(ch in GLOB_CHARS for part in table.file.parts[:-1] for ch in part):
                problems.append(
                    f"key 'connector.tables.{entity}.file': wildcards (* ?) may only be in "
                    "the file name, not in its folders; name the folder in full"
                )
            elif "**" in table.file.name:
                problems.append(
                    f"key 'connector.tables.{entity}.file': '**' is not allowed; one '*' "
                    "matches any part of a file name in the one folder named"
                )
            elif problem := _table_file_problem(
                member, table.file, location_ok, remote, root, other_ids
            ):
                problems.append(f"key 'connector.tables.{entity}.file': {problem}")
        for entity, table in conn.tables.items():
            if entity not in ENTITY_FIELDS:
                problems.append(
                    f"key 'connector.tables.{entity}': unknown table"
                    f"{_suggest(entity, ENTITY_FIELDS)};"
                    f" use one of {', '.join(ENTITY_FIELDS)}"
                )
                continue
            allowed = ENTITY_FIELDS[entity]["required"] + ENTITY_FIELDS[entity]["optional"]
            for field in table.columns:
                if field not in allowed:
                    problems.append(
                        f"key 'connector.tables.{entity}.columns.{field}': not a field of "
                        f"{entity}{_suggest(field, allowed)}; fields are {', '.join(allowed)}"
                    )
            for key, fields in (("required", table.required), ("defaults", table.defaults)):
                for field in fields:
                    if field not in allowed:
                        problems.append(
                            f"key 'connector.tables.{entity}.{key}': '{field}' is not a field of "
                            f"{entity}{_suggest(field, allowed)}; fields are {', '.join(allowed)}"
                        )
            for field in table.defaults:
                if field in NO_DEFAULT_FIELDS:
                    problems.append(
                        f"key 'connector.tables.{entity}.defaults.{field}': an id cannot have a "
                        "default (every row would get the same one); map its column instead"
                    )
            for field in (*ENTITY_FIELDS[entity]["required"], *table.required):
                if field in allowed and field not in table.columns and field not in table.defaults:
                    problems.append(
                        f"key 'connector.tables.{entity}.columns': '{field}' is required; "
                        f"add '{field}: <header in your file>', or give every row a value "
                        f"with 'defaults: {{{field}: <value>}}'"
                    )
            suffix = table.file.suffix.lower()
            if suffix not in {".csv", ".txt", ".tsv", ".xlsx", ".xlsm", ".xls", ".xlsb", ".ods"}:
                problems.append(
                    f"key 'connector.tables.{entity}.file': '{table.file}' is not a CSV or "
                    "Excel file; export the sheet as .csv or .xlsx"
                )
            if table.sheet and suffix in {".csv", ".txt", ".tsv"}:
                problems.append(
                    f"key 'connector.tables.{entity}.sheet': a CSV file has no sheets; remove it"
                )
        if (
            member.sharing.consent == "per_record"
            and "person" in conn.tables
            and ("consent_to_share" not in conn.tables["person"].columns)
        ):
            problems.append(
                "key 'sharing.consent': per_record needs a consent column; map "
                "connector.tables.person.columns.consent_to_share, "
                "or set consent to 'all' or 'none'"
            )
    elif member.sharing.consent == "per_record" and not conn.consent_field:
        problems.append(
            "key 'connector.consent_field': per_record consent needs the field that records "
            "it; name it, or set sharing.consent to 'all' or 'none'"
        )
    areas = taxonomy.areas
    for label, area in member.mappings.programmes.items():
        if area not in areas:
            problems.append(
                f"key 'mappings.programmes.{label}': '{area}' is not an outcome area"
                f"{_suggest(area, areas)}; use one of {', '.join(areas)}"
            )
    for label, status in member.mappings.engagement_status.items():
        if status not in taxonomy.engagement_statuses:
            problems.append(
                f"key 'mappings.engagement_status.{label}': '{status}' is not an engagement status"
                f"; use one of {', '.join(taxonomy.engagement_statuses)}"
            )
    for label, code in member.mappings.outcomes.items():
        if code not in taxonomy.outcomes:
            problems.append(
                f"key 'mappings.outcomes.{label}': '{code}' is not an outcome code"
                f"{_suggest(code, taxonomy.outcomes)}; see connectors/taxonomy.yaml"
            )
    for label, status in member.mappings.outcome_status.items():
        if status not in taxonomy.outcome_statuses:
            problems.append(
                f"key 'mappings.outcome_status.{label}': '{status}' is not an outcome status"
                f"; use one of {', '.join(taxonomy.outcome_statuses)}"
            )
    for name, mapping in member.mappings.model_dump().items():
        seen: dict[str, str] = {}
        for label in mapping:
            norm = normalise_label(label)
            if norm in seen:
                problems.append(
                    f"key 'mappings.{name}': '{label}' and '{seen[norm]}' are the same label "
                    "once case and spaces are ignored; keep one"
                )
            seen[norm] = label
    return problems


_SECRET_WORDS = re.compile(
    r"(password|secret|token|api_?key|site_?key|private_?key|client_?secret)", re.I
)


def _inline_secrets(data: Any, path: str = "") -> list[str]:
    """Find secret-looking keys whose value is written inline instead of referenced."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            here = f"{path}.{key}" if path else str(key)
            if _SECRET_WORDS.search(str(key)) and isinstance(value, str | int):
                found.append(
                    f"key '{here}': secrets must not be written in the file; use "
                    f"'{key}: {{env: SOME_VARIABLE}}' and export SOME_VARIABLE"
                )
            else:
                found.extend(_inline_secrets(value, here))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            found.extend(_inline_secrets(item, f"{path}[{i}]"))
    return found


# A member file is a few dozen lines; anything far bigger is not one.
MAX_MEMBER_FILE_CHARS = 256 * 1024
# The deepest a member file nests (connector.tables.person.columns.x is 5 levels); a file
# of 50,000 nested '[' would exhaust Python's recursion building it and stop every command.
MAX_MEMBER_FILE_DEPTH = 32
_OPENS = (
    yaml.BlockMappingStartToken,
    yaml.BlockSequenceStartToken,
    yaml.FlowMappingStartToken,
    yaml.FlowSequenceStartToken,
)
_CLOSES = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def _unbounded_yaml(text: str) -> str | None:
    """Why ``text`` must not be parsed as YAML, or None.

    A ~350-byte file of nested anchors and aliases ("billion laughs") expands to billions of
    nodes when loaded and hung every command. Anchors and aliases are refused outright (a
    member file never needs them), found by scanning tokens, which expands nothing; the
    nesting depth is bounded the same way, before the (recursive) composer sees the file.
    """
    if len(text) > MAX_MEMBER_FILE_CHARS:
        return (
            f"the file has {len(text):,} characters, over the limit of "
            f"{MAX_MEMBER_FILE_CHARS:,} for a member file; keep only the member's settings in it"
        )
    depth = 0
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, _OPENS):
                depth += 1
                if depth > MAX_MEMBER_FILE_DEPTH:
                    mark = token.start_mark
                    return (
                        f"line {mark.line + 1}, column {mark.column + 1}: the file nests "
                        f"deeper than {MAX_MEMBER_FILE_DEPTH} levels, which no member "
                        "setting needs; write the settings as plain key: value lines"
                    )
            elif isinstance(token, _CLOSES):
                depth -= 1
            elif isinstance(token, yaml.AnchorToken | yaml.AliasToken):
                mark = token.start_mark
                return (
                    f"line {mark.line + 1}, column {mark.column + 1}: YAML anchors and aliases "
                    "('&name' and '*name') are not allowed in member files; write each value "
                    "out in full"
                )
    except yaml.YAMLError:
        return None  # safe_load reports the syntax error with its position
    return None


def other_member_ids(path: Path) -> tuple[str, ...]:
    """The ids of the other member files beside ``path`` (valid or not: a broken file is
    still a member whose secrets nobody else may reach)."""
    try:
        names = {p.stem for p in path.parent.iterdir() if p.suffix in (".yaml", ".yml")}
    except OSError:
        return ()
    return tuple(sorted(n for n in names if n != path.stem and ORG_ID_PATTERN.match(n)))


def load_member(path: Path, taxonomy: Taxonomy | None = None) -> Member:
    """Read and validate one member file; raise MemberConfigError listing every problem."""
    taxonomy = taxonomy or load_taxonomy()
    shown = str(path)
    limit = 4 * MAX_MEMBER_FILE_CHARS
    try:
        if path.exists() and not path.is_file():  # a pipe would block, a device never end
            raise MemberConfigError(
                shown, ["not a regular file (a pipe, a device or a folder); make it a file"]
            )
        if path.stat().st_size > limit:  # before reading it into memory
            raise MemberConfigError(
                shown,
                [
                    f"the file is {path.stat().st_size:,} bytes, far over the limit for a "
                    "member file; keep only the member's settings in it"
                ],
            )
        with path.open("rb") as handle:  # bounded even if the file grows meanwhile
            raw = handle.read(limit + 1)
        if len(raw) > limit:
            raise MemberConfigError(
                shown, ["the file is far over the limit for a member file; keep only settings"]
            )
        text = raw.decode("utf-8-sig")
    except FileNotFoundError as err:
        raise MemberConfigError(shown, ["file not found; create it or check the path"]) from err
    except (OSError, UnicodeDecodeError) as err:
        raise MemberConfigError(shown, [f"cannot read the file ({err}); save it as UTF-8"]) from err
    bounded = _unbounded_yaml(text)
    if bounded:
        raise MemberConfigError(shown, [bounded])
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise MemberConfigError(shown, [f"not valid YAML{where}: {err}"]) from err
    if not isinstance(data, dict):
        raise MemberConfigError(shown, ["the file must be a YAML mapping (key: value lines)"])
    problems = _inline_secrets(data)
    data = {**data, "org_id": data.get("org_id", path.stem), "config_path": path.resolve()}
    if data["org_id"] != path.stem:
        problems.append(
            f"key 'org_id': '{data['org_id']}' differs from the file name '{path.stem}'; "
            "remove org_id or rename the file to match it"
        )
    try:
        member = Member.model_validate(data)
    except ValidationError as err:
        raise MemberConfigError(shown, problems + [_explain(e) for e in err.errors()]) from err
    problems += _check_semantics(member, taxonomy, other_member_ids(path))
    if problems:  # one problem found by two checks is listed once
        raise MemberConfigError(shown, list(dict.fromkeys(problems)))
    return member


@dataclass(frozen=True)
class MemberRegistry:
    """Every member file in a folder: the valid members and, apart, the broken files."""

    members: dict[str, Member]
    errors: dict[str, MemberConfigError]

    def get(self, org_id: str) -> Member:
        """Return one member, or explain why it is not available."""
        if org_id in self.members:
            return self.members[org_id]
        if org_id in self.errors:
            raise self.errors[org_id]
        raise MemberConfigError(
            org_id,
            [
                f"no member '{org_id}'{_suggest(org_id, self.members)}; members are "
                f"{', '.join(sorted(self.members)) or 'none'}"
            ],
        )


def load_members(directory: Path, taxonomy: Taxonomy | None = None) -> MemberRegistry:
    """Load every ``*.yaml`` in ``directory``; a broken file never hides the others."""
    taxonomy = taxonomy or load_taxonomy()
    members: dict[str, Member] = {}
    errors: dict[str, MemberConfigError] = {}
    if not directory.is_dir():
        return MemberRegistry(members, errors)
    for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
        if path.name.startswith(("_", ".")):
            continue
        try:
            members[path.stem] = load_member(path, taxonomy)
        except MemberConfigError as err:
            errors[path.stem] = err
    return MemberRegistry(members, errors)
