"""Build one member's slice of the canonical model and its quarantine from its raw load.

Each connector kind has its SQL models (``transforms/sql/canonical/<kind>_<table>.sql``,
``transforms/sql/quarantine/<kind>_*.sql``). A member's rows are replaced as a whole inside
one transaction, so a member's canonical slice always matches one consistent raw load and a
rebuild for one member never touches another's rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dlt.common.normalizers.naming.snake_case import NamingConvention

from connectors.members import (
    ENTITY_FIELDS,
    CiviCRMConnector,
    Member,
    SalesforceConnector,
    SpreadsheetConnector,
    normalise_label,
)
from transforms import sql
from transforms.errors import TransformError
from transforms.people import normalise_people
from transforms.unreadable import quarantine_unreadable
from transforms.warehouse import Session, Warehouse

CANONICAL_TABLES = ("person", "programme", "engagement", "service_delivery", "outcome")
SPREADSHEET_ENTITIES = ("person", "engagement", "service_delivery", "outcome")


@dataclass(frozen=True)
class Model:
    """One SQL model inserted into one target table for one member."""

    target: str
    name: str
    entity: str
    tables: dict[str, str] = field(default_factory=dict)


def _spreadsheet_models() -> list[Model]:
    models = [Model(f"canonical.{t}", f"canonical/spreadsheet_{t}", t) for t in CANONICAL_TABLES]
    models += [
        Model(
            "quarantine.rejected_rows",
            "quarantine/spreadsheet_loaded",
            entity,
            {"raw.spreadsheet__entity_quarantine": f"raw.spreadsheet__{entity}_quarantine"},
        )
        for entity in SPREADSHEET_ENTITIES
    ]
    models += [
        Model("quarantine.rejected_rows", f"quarantine/spreadsheet_{entity}", entity)
        for entity in ("engagement", "service_delivery", "outcome")
    ]
    return models


def _salesforce_models() -> list[Model]:
    # Order matters only for readability: every model reads raw tables and hub.label_map.
    models = [Model(f"canonical.{t}", f"canonical/salesforce_{t}", t) for t in CANONICAL_TABLES]
    models += [
        Model("quarantine.rejected_rows", f"quarantine/salesforce_{entity}", entity)
        for entity in ("programme", "engagement", "service_delivery", "outcome")
    ]
    return models


MODELS_BY_CONNECTOR: dict[str, list[Model]] = {
    "spreadsheet": _spreadsheet_models(),
    "salesforce_npsp": _salesforce_models(),
    "civicrm": [
        *(Model(f"canonical.{t}", f"canonical/civicrm_{t}", t) for t in CANONICAL_TABLES),
        Model("quarantine.rejected_rows", "quarantine/civicrm_engagement", "engagement"),
        Model("quarantine.rejected_rows", "quarantine/civicrm_activity", "service_delivery"),
    ],
}


@dataclass(frozen=True)
class MemberBuild:
    """What one member's canonical build wrote, for asset metadata and the demo summary."""

    org_id: str
    rows: dict[str, int]
    quarantined: dict[str, int]
    skipped_models: list[str]


def ensure_schema(session: Session, dialect: str) -> None:
    """Create the hub's schemas and tables if they are not there yet."""
    for statement in sql.render_script("ddl/warehouse", dialect=dialect):
        session.execute(statement)


def label_map_rows(member: Member) -> list[tuple[str, str, str, str]]:
    """(org_id, mapping, normalised label, value) rows from a member's mappings."""
    m = member.mappings
    rows = [(member.org_id, "programme", normalise_label(k), k) for k in m.programmes]
    # CRM programmes are records with their own ids: their name finds the outcome area.
    rows += [
        (member.org_id, "programme_area", normalise_label(k), area)
        for k, area in m.programmes.items()
    ]
    rows += [
        (member.org_id, "engagement_status", normalise_label(k), v)
        for k, v in m.engagement_status.items()
    ]
    rows += [(member.org_id, "outcome", normalise_label(k), v) for k, v in m.outcomes.items()]
    rows += [
        (member.org_id, "outcome_status", normalise_label(k), v)
        for k, v in m.outcome_status.items()
    ]
    # Values a CRM consent field may hold that mean "yes" (spreadsheets parse them on read).
    yes = {normalise_label(v) for v in member.sharing.consent_yes}
    rows += [(member.org_id, "consent_yes", label, "true") for label in sorted(yes)]
    conn = member.connector
    if isinstance(conn, SalesforceConnector):
        absent = {normalise_label(v) for v in conn.absent_statuses}
        rows += [(member.org_id, "attendance_absent", label, "true") for label in sorted(absent)]
    if isinstance(conn, CiviCRMConnector):
        for mapping, values in (
            ("delivery_activity_type", conn.delivery_activity_types),
            ("delivered_status", conn.delivered_statuses),
        ):
            labels = {normalise_label(v) for v in values}
            rows += [(member.org_id, mapping, label, "true") for label in sorted(labels)]
    return rows


_DLT_NAMES = NamingConvention()


def raw_column(field_name: str) -> str:
    """The raw table's column for a source field, named as dlt names it
    (``pmdm__StartDate__c`` -> ``pmdm__start_date__c``)."""
    return _DLT_NAMES.normalize_path(field_name)


def column_slots(member: Member) -> dict[str, str | None]:
    """Raw columns behind the ``cfg__<role>`` slots of a member's models (None: no field)."""
    conn = member.connector
    if isinstance(conn, CiviCRMConnector):
        # The source names these columns itself, but only loads the ones configured.
        fields = conn.outcome_fields
        return {
            "outcome": "outcome" if fields else None,
            "outcome_status": "outcome_status" if fields and fields.status else None,
            "outcome_value": "outcome_value" if fields and fields.value else None,
        }
    if not isinstance(conn, SalesforceConnector):
        return {}
    slots: dict[str, str | None] = {
        "consent": raw_column(conn.consent_field) if conn.consent_field else None
    }
    outcome = conn.outcome
    if outcome is not None:
        for role, name in (
            ("contact", outcome.contact_field),
            ("program", outcome.program_field),
            ("label", outcome.label_field),
            ("status", outcome.status_field),
            ("measured_on", outcome.measured_on_field),
            ("value", outcome.value_field),
        ):
            slots[role] = raw_column(name) if name else None
    return slots


def _missing_inputs(session: Session, model: Model, raw_schema: str) -> list[str]:
    missing = []
    for schema, table in sql.upstream_tables(model.name, model.tables):
        schema = raw_schema if schema == "raw" else schema
        if not session.table_exists(schema, table):
            missing.append(f"{schema}.{table}")
    return missing


def _params(member: Member, model: Model) -> dict[str, str]:
    """Placeholder values: the member, its config file, and the headers its files use.

    Quarantine rows name the column as the member wrote it in the file, not the canonical
    field, so the member can find it.
    """
    params = {
        "org_id": member.org_id,
        "config_file": f"members/{member.config_path.name}",
        "consent_policy": member.sharing.consent,
    }
    columns: dict[str, str] = {}
    conn = member.connector
    if isinstance(conn, SpreadsheetConnector) and model.entity in conn.tables:
        columns = conn.tables[model.entity].columns
    for spec in ENTITY_FIELDS.values():
        for name in spec["required"] + spec["optional"]:
            params.setdefault(f"header_{name}", columns.get(name, name))
    if isinstance(conn, SalesforceConnector) and conn.outcome is not None:
        # Quarantine rows name the member's own Salesforce fields.
        outcome = conn.outcome
        params["outcome_object"] = outcome.object
        params["field_contact"] = outcome.contact_field
        params["field_program"] = outcome.program_field or ""
        params["field_label"] = outcome.label_field
        params["field_status"] = outcome.status_field
        params["field_measured_on"] = outcome.measured_on_field
    if isinstance(conn, CiviCRMConnector):
        fields = conn.outcome_fields
        params["field_outcome"] = fields.outcome.split(":")[0] if fields else ""
        params["field_outcome_status"] = (fields.status or "").split(":")[0] if fields else ""
    return params


def _slots(session: Session, member: Member, model: Model) -> dict[str, str | None]:
    """The member's ``cfg__`` slots, plus the raw columns a model reads only when present.

    A spreadsheet's quarantine table gained its ``rule`` column with issue #21; a file not
    changed since is not reloaded, so its older table is read with the rule unclassified
    until the member's next load, rather than failing the member's whole mapping stage.
    """
    slots = column_slots(member)
    if model.name == "quarantine/spreadsheet_loaded":
        table = model.tables["raw.spreadsheet__entity_quarantine"].split(".")[1]
        present = set(session.columns(member.raw_dataset, table))
        slots = {**slots, "rule": "rule" if "rule" in present else None}
    return slots


def _check_raw_columns(session: Session, member: Member, model: Model) -> None:
    """Fail with the field and the fix when a raw table lacks a column the model reads.

    A CRM field hidden from the integration user is simply absent from the load (the load
    reports it); without this the model would fail with a bare "column not found".
    """
    slots = _slots(session, member, model)
    for table, needed in sql.raw_columns(model.name, model.tables, slots).items():
        present = set(session.columns(member.raw_dataset, table))
        missing = sorted(needed - present)
        if missing:
            raise TransformError(
                f"{member.org_id}: {model.name} needs column(s) {', '.join(missing)} of "
                f"{member.raw_dataset}.{table}, which the last load did not bring: the field "
                "is missing in the source or hidden from the integration user (the load's "
                "warnings name it). Grant read access to it, or change the field named in "
                f"members/{member.config_path.name}, then load again."
            )


def _insert(session: Session, warehouse: Warehouse, member: Member, model: Model) -> int:
    _check_raw_columns(session, member, model)
    statement = sql.render(
        model.name,
        dialect=warehouse.dialect,
        params=_params(member, model),
        raw_schema=member.raw_dataset,
        tables=model.tables,
        columns=_slots(session, member, model),
    )
    schema, table = model.target.split(".")
    columns = [c for c in session.columns(schema, table)]
    produced = sql.output_columns(model.name)
    if set(produced) != set(columns):
        raise ValueError(
            f"{model.name}.sql produces {sorted(produced)} but {model.target} has {sorted(columns)}"
        )
    before = session.fetchall(f"SELECT COUNT(*) FROM {model.target}")[0][0]
    session.execute(f"INSERT INTO {model.target} ({', '.join(produced)}) {statement}")
    return session.fetchall(f"SELECT COUNT(*) FROM {model.target}")[0][0] - before


def build_member(warehouse: Warehouse, member: Member) -> MemberBuild:
    """Replace ``member``'s rows in canonical.* and quarantine.rejected_rows from its raw data."""
    kind = member.connector.kind
    # A connector whose SQL models have not landed yet contributes no canonical rows.
    models = MODELS_BY_CONNECTOR.get(kind, [])
    rows: dict[str, int] = dict.fromkeys(CANONICAL_TABLES, 0)
    quarantined: dict[str, int] = {}
    skipped: list[str] = []
    with warehouse.connect() as session:
        ensure_schema(session, warehouse.dialect)
        session.execute("DELETE FROM hub.label_map WHERE org_id = ?", [member.org_id])
        for row in label_map_rows(member):
            session.execute("INSERT INTO hub.label_map VALUES (?, ?, ?, ?)", list(row))
        session.execute("DELETE FROM hub.member WHERE org_id = ?", [member.org_id])
        session.execute(
            "INSERT INTO hub.member VALUES (?, ?, ?, ?)",
            [member.org_id, member.name, kind, datetime.now(UTC).replace(tzinfo=None)],
        )
        # Every table this member may have rows in, so nothing stale survives a rebuild.
        for target in [*(f"canonical.{t}" for t in CANONICAL_TABLES), "quarantine.rejected_rows"]:
            session.execute(f"DELETE FROM {target} WHERE org_id = ?", [member.org_id])
        for model in models:
            if _missing_inputs(session, model, member.raw_dataset):
                skipped.append(model.name)
                continue
            added = _insert(session, warehouse, member, model)
            if model.target.startswith("canonical."):
                rows[model.target.split(".")[1]] += added
        # Values the Salesforce load could not read (loaded empty) are warnings here.
        quarantine_unreadable(session, member)
        if kind != "spreadsheet":  # spreadsheet values are normalised as they are read
            normalise_people(session, member)
        for severity, count in session.fetchall(
            "SELECT severity, COUNT(*) FROM quarantine.rejected_rows WHERE org_id = ? "
            "GROUP BY severity",
            [member.org_id],
        ):
            quarantined[severity] = count
    return MemberBuild(member.org_id, rows, quarantined, skipped)


def remove_members_not_in(warehouse: Warehouse, org_ids: Iterable[str]) -> list[str]:
    """Drop canonical rows of organisations no longer configured; return their ids.

    A member that leaves the network must leave the published figures too.
    """
    keep = set(org_ids)
    removed: list[str] = []
    with warehouse.connect() as session:
        ensure_schema(session, warehouse.dialect)
        present = {
            r[0]
            for r in session.fetchall(
                "SELECT org_id FROM hub.member UNION SELECT org_id FROM hub.member_status"
            )
        }
        for org_id in sorted(present - keep):
            for table in [
                *(f"canonical.{t}" for t in CANONICAL_TABLES),
                "quarantine.rejected_rows",
                "hub.label_map",
                "hub.member_status",
                "hub.member",
            ]:
                session.execute(f"DELETE FROM {table} WHERE org_id = ?", [org_id])
            removed.append(org_id)
    return removed
