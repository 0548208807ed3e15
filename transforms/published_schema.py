"""The published tables, described once.

This module is the single source of truth for what a release may contain: the Frictionless
``datapackage.json``, the release's HTML page, the Arrow types of the Parquet files and the
guard that refuses any column not listed here all read it. Keeping one declaration means a
column cannot be documented one way and published another, and a column that is not declared
(a name, a source id, a full postcode) cannot reach a release by accident.

No published column holds personal data or a source record id: people appear only as counts
of distinct pseudonymous hub ``person_key``s, places only as postcode districts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

SUPPRESSED_SUFFIX = "_suppressed"

# Frictionless type -> Arrow type used for the Parquet files and for casting before release.
_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
    "datetime": pa.timestamp("us", tz="UTC"),
}

NO_PERSONAL_DATA = (
    "No column holds personal data or a source record id: people are only counted "
    "(distinct pseudonymous hub person keys), places are postcode districts."
)
_PERIOD_PATTERN = r"[0-9]{4}-Q[1-4]"
# A UK postcode outward code (district), never a full postcode; or the reserved values.
_AREA_PATTERN = r"([A-Za-z]{1,2}[0-9][A-Za-z0-9]?|other|unknown|all)"
# The only reasons a release gives for holding a member back (never error text).
HELD_BACK_REASON_PATTERN = r"its last (load|mapping) failed on [0-9]{4}-[0-9]{2}-[0-9]{2}"


class SchemaError(ValueError):
    """A table does not match its published schema; the message names the table and column."""


@dataclass(frozen=True)
class PublishedField:
    """One published column: its Frictionless type, meaning and constraints."""

    name: str
    type: str
    description: str
    constraints: dict[str, Any] = field(default_factory=dict)

    @property
    def arrow_type(self) -> pa.DataType:
        """Arrow type written to Parquet (integers are 64-bit, datetimes UTC)."""
        return _ARROW_TYPES[self.type]

    @property
    def required(self) -> bool:
        """Whether the column may never be empty."""
        return bool(self.constraints.get("required"))

    def to_frictionless(self) -> dict[str, Any]:
        """Frictionless Table Schema field descriptor."""
        descriptor: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "description": self.description,
        }
        if self.type == "boolean":
            descriptor["trueValues"] = ["true"]
            descriptor["falseValues"] = ["false"]
        if self.constraints:
            descriptor["constraints"] = dict(self.constraints)
        return descriptor


@dataclass(frozen=True)
class PublishedTable:
    """One published table: name, documentation, primary key and ordered fields."""

    name: str
    title: str
    description: str
    primary_key: tuple[str, ...]
    fields: tuple[PublishedField, ...]
    disclosure_controlled: bool

    @property
    def field_names(self) -> list[str]:
        """Column names in published order."""
        return [f.name for f in self.fields]

    @property
    def measures(self) -> list[str]:
        """Counts that disclosure control may suppress (those that have a flag column)."""
        names = set(self.field_names)
        return [
            f.name
            for f in self.fields
            if not f.name.endswith(SUPPRESSED_SUFFIX) and suppressed_flag(f.name) in names
        ]

    def get_field(self, name: str) -> PublishedField:
        """The field called ``name`` (KeyError if the table has none)."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no column {name!r}")

    def arrow_schema(self) -> pa.Schema:
        """Arrow schema of the table as published (Parquet files use it)."""
        return pa.schema(
            [pa.field(f.name, f.arrow_type, nullable=not f.required) for f in self.fields]
        )

    def to_frictionless(self) -> dict[str, Any]:
        """Frictionless Table Schema. Empty CSV cells are the only missing value."""
        return {
            "fields": [f.to_frictionless() for f in self.fields],
            "primaryKey": list(self.primary_key),
            "missingValues": [""],
        }

    def conform(self, table: pa.Table) -> pa.Table:
        """Return ``table`` with exactly this schema's columns, in order, cast to its types.

        Raises ``SchemaError`` naming the first column that is not in the schema (so that a
        personal column can never slip into a release), or the columns that are missing.
        """
        allowed = set(self.field_names)
        for column in table.column_names:
            if column not in allowed:
                raise SchemaError(
                    f"{self.name}: column {column!r} is not in the published schema "
                    f"(allowed: {', '.join(self.field_names)}); refusing to publish it"
                )
        missing = [name for name in self.field_names if name not in table.column_names]
        if missing:
            raise SchemaError(f"{self.name}: missing published column(s) {', '.join(missing)}")
        columns = []
        for f in self.fields:
            column = table.column(f.name)
            if column.type != f.arrow_type:
                try:
                    column = column.cast(f.arrow_type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    # Arrow's message quotes the value that failed: never repeat it.
                    raise SchemaError(
                        f"{self.name}.{f.name}: cannot cast {column.type} to {f.arrow_type} "
                        "(a value does not fit the published type)"
                    ) from None
            if f.required and column.null_count:
                raise SchemaError(f"{self.name}.{f.name}: {column.null_count} empty value(s)")
            columns.append(column)
        return pa.Table.from_arrays(columns, schema=self.arrow_schema())


def suppressed_flag(measure: str) -> str:
    """Name of the boolean column that says ``measure`` was suppressed on a row."""
    return f"{measure}{SUPPRESSED_SUFFIX}"


def _period() -> PublishedField:
    return PublishedField(
        "period",
        "string",
        "Calendar quarter, written YYYY-Qn (2025-Q1 is January to March 2025).",
        {"required": True, "pattern": _PERIOD_PATTERN},
    )


def _area() -> PublishedField:
    return PublishedField(
        "area",
        "string",
        "Postcode district (the outward part of a UK postcode, such as M14) where the people "
        "live, named only in a quarter in which at least the disclosure threshold of people "
        "from it were counted; 'other' for the people of the quarter's smaller districts; "
        "'unknown' when no usable UK postcode is held; 'all' for the total across areas. Each "
        "person is placed in one area (their most recent postcode), so the area rows of a "
        "quarter add up to its 'all' row. Every quarter has a row for each area it names and "
        "for other, unknown and all, whatever their counts.",
        {"required": True, "pattern": _AREA_PATTERN},
    )


def _count(name: str, description: str, *, nullable: bool = True) -> PublishedField:
    constraints: dict[str, Any] = {"minimum": 0}
    if not nullable:
        constraints["required"] = True
    return PublishedField(name, "integer", description, constraints)


def _flag(measure: str) -> PublishedField:
    return PublishedField(
        suppressed_flag(measure),
        "boolean",
        f"true when {measure} is withheld by disclosure control (the {measure} cell is then "
        "empty): either it is below the threshold, or it could otherwise be worked out from "
        "published totals. false when the value is shown or does not apply.",
        {"required": True},
    )


_SUPPRESSION_NOTE = (
    "Counts below the disclosure threshold (5 by default), including 0, are withheld, and "
    "further counts are withheld wherever a reader could otherwise narrow a withheld count "
    "down (from totals, from the other measures and tables, or from earlier releases) to a "
    "range narrower than the threshold; a withheld count is an empty cell with its "
    "<measure>_suppressed flag set to true."
)

OUTCOMES_SUMMARY = PublishedTable(
    name="outcomes_summary",
    title="Outcomes by quarter, area and outcome",
    description=(
        "People engaged with, and achieving, each outcome of the shared taxonomy, per calendar "
        "quarter and postcode district, across all member organisations. People are counted "
        "by distinct hub person key, so someone helped by two members counts once. Rows with "
        "outcome_code 'all' cover the whole outcome area, including engagements and service "
        "deliveries. " + _SUPPRESSION_NOTE + " " + NO_PERSONAL_DATA
    ),
    primary_key=("period", "area", "outcome_area", "outcome_code"),
    fields=(
        _period(),
        _area(),
        PublishedField(
            "outcome_area",
            "string",
            "Outcome area of the shared taxonomy (housing, employment, education_skills, "
            "health_wellbeing, financial_inclusion, food_security, social_connection, "
            "experience, or an area added to the taxonomy).",
            {"required": True},
        ),
        PublishedField(
            "outcome_code",
            "string",
            "Outcome code of the shared taxonomy within the outcome area (such as "
            "tenancy_sustained), or 'all' for the whole outcome area.",
            {"required": True},
        ),
        _count(
            "organisations",
            "Number of member organisations contributing to the row, on 'all' area rows "
            "only (empty on district rows: for one district, whether it is 0 would tell "
            "whether anyone from there was counted). Withheld whenever people_engaged is.",
        ),
        _count(
            "people_engaged",
            "Distinct people. On an outcome-code row: people with an outcome of that code "
            "measured in the quarter. On an 'all' row: people engaged with the outcome area "
            "in the quarter (an engagement active during the quarter in a programme of the "
            "area, a service delivery in the quarter, or an outcome of the area measured in "
            "the quarter).",
        ),
        _count(
            "people_achieving",
            "Distinct people whose outcome (of that code, or on an 'all' row of any code of "
            "the area) was recorded as achieved in the quarter.",
        ),
        _count(
            "engagements",
            "Only on 'all' rows: engagements (enrolments) active during the quarter in "
            "programmes of the outcome area. Empty on outcome-code rows, where it does not "
            "apply.",
        ),
        _count(
            "deliveries",
            "Only on 'all' rows: service deliveries dated in the quarter in programmes of the "
            "outcome area. Empty on outcome-code rows, where it does not apply.",
        ),
        _flag("organisations"),
        _flag("people_engaged"),
        _flag("people_achieving"),
        _flag("engagements"),
        _flag("deliveries"),
    ),
    disclosure_controlled=True,
)

CROSS_ORG_REACH = PublishedTable(
    name="cross_org_reach",
    title="People served by one or more members",
    description=(
        "People served in each calendar quarter and postcode district by any member "
        "organisation, split by how many different members served them in that quarter. "
        "people = served_by_1 + served_by_2 + served_by_3_plus. People are counted by "
        "distinct hub person key; records of people who did not consent to sharing are not "
        "linked across members. " + _SUPPRESSION_NOTE + " " + NO_PERSONAL_DATA
    ),
    primary_key=("period", "area"),
    fields=(
        _period(),
        _area(),
        _count("people", "Distinct people served in the quarter by any member organisation."),
        _count("served_by_1", "People served in the quarter by exactly one member."),
        _count("served_by_2", "People served in the quarter by exactly two members."),
        _count("served_by_3_plus", "People served in the quarter by three or more members."),
        _flag("people"),
        _flag("served_by_1"),
        _flag("served_by_2"),
        _flag("served_by_3_plus"),
    ),
    disclosure_controlled=True,
)

ORGANISATION_SUMMARY = PublishedTable(
    name="organisation_summary",
    title="Member organisations and their data",
    description=(
        "Each member organisation, how many records it contributed and how many were set "
        "aside (quarantined) because they failed validation, when its data was last "
        "refreshed, and whether its data is current or held back: when a member's latest "
        "load or mapping failed, its last good data is still counted in every table of the "
        "release and status says held_back, with when that data was loaded and why it was "
        "held back. Record counts below the disclosure threshold, including 0, are withheld "
        "like the other tables' counts. " + NO_PERSONAL_DATA
    ),
    primary_key=("org_id",),
    fields=(
        PublishedField(
            "org_id",
            "string",
            "The member organisation's identifier in the hub.",
            {"required": True, "unique": True},
        ),
        PublishedField("name", "string", "The member organisation's name.", {"required": True}),
        _count(
            "records_loaded",
            "Records (people, programmes, engagements, service deliveries, outcomes) loaded "
            "into the hub's canonical model.",
        ),
        _count(
            "records_quarantined",
            "Records set aside because they failed validation (errors only).",
        ),
        PublishedField(
            "last_refreshed",
            "datetime",
            "When the member's data was last loaded, in UTC (ISO 8601).",
        ),
        PublishedField(
            "status",
            "string",
            "current: the member's latest data was loaded and is counted. held_back: its "
            "latest load or mapping failed, so the release counts its last good data (loaded "
            "at last_good_load) instead.",
            {"required": True, "enum": ["current", "held_back"]},
        ),
        PublishedField(
            "last_good_load",
            "datetime",
            "When the member's data counted in this release was loaded and mapped, in UTC "
            "(ISO 8601); for a held-back member, how old its figures are.",
        ),
        PublishedField(
            "held_back_reason",
            "string",
            "Why the member is held back: 'its last load failed on YYYY-MM-DD' (its data "
            "could not be read) or 'its last mapping failed on YYYY-MM-DD' (it was read but "
            "could not be mapped onto the shared model). Empty when status is current.",
            {"pattern": HELD_BACK_REASON_PATTERN},
        ),
        _flag("records_loaded"),
        _flag("records_quarantined"),
    ),
    disclosure_controlled=True,
)

PUBLISHED_SCHEMAS: dict[str, PublishedTable] = {
    t.name: t for t in (OUTCOMES_SUMMARY, CROSS_ORG_REACH, ORGANISATION_SUMMARY)
}


def published_table(name: str) -> PublishedTable:
    """The published table called ``name``; ``SchemaError`` if there is none."""
    try:
        return PUBLISHED_SCHEMAS[name]
    except KeyError:
        raise SchemaError(
            f"{name!r} is not a published table (expected one of {', '.join(PUBLISHED_SCHEMAS)})"
        ) from None


def check_columns(name: str, columns: Iterable[str]) -> None:
    """Raise ``SchemaError`` naming any column of ``name`` that is not in its schema."""
    schema = published_table(name)
    allowed = set(schema.field_names)
    for column in columns:
        if column not in allowed:
            raise SchemaError(
                f"{name}: column {column!r} is not in the published schema; refusing to publish it"
            )
