"""``hub check <org>`` for CiviCRM: can we get in, and what would a load read and map?

Read-only and cheap (a few dozen small API requests): authenticates, reads the version,
tests each permission a load needs, confirms every field the member's config reads exists
(custom fields included, as ``Group.field``), and lists the option names the mapping meets:
case types, case statuses, activity types and statuses, and the outcome field's options.
Option names come from ``getFields`` with ``loadOptions``, so the member sees every value
its site can hold, not just those in use today. Never prints personal data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from connectors.civicrm.client import CiviCRMClient, CiviCRMError
from connectors.civicrm.settings import CiviCRMSettings
from connectors.civicrm.source import entity_specs

# Mapping role -> (entity, field) whose option names that role maps.
OPTION_ROLES: dict[str, tuple[str, str]] = {
    "programmes": ("Case", "case_type_id"),
    "engagement_status": ("Case", "status_id"),
    "delivery_activity_types": ("Activity", "activity_type_id"),
    "delivered_statuses": ("Activity", "status_id"),
}


@dataclass
class SiteCheck:
    """Everything ``hub check`` shows for a CiviCRM member."""

    version: str
    permissions: dict[str, bool | None]  # None: not confirmed (see client.PERMISSION_PROBES)
    visible: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    entities: dict[str, int] = field(default_factory=dict)  # entity -> fields it has
    custom_fields: dict[str, list[str]] = field(default_factory=dict)  # entity -> Group.field
    labels: dict[str, list[str]] = field(default_factory=dict)  # mapping role -> option names
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _option_names(client: CiviCRMClient, entity: str, name: str) -> list[str] | None:
    """The option names of one field (None: the field has no option list)."""
    result = client.call(
        entity,
        "getFields",
        {"select": ["name", "options"], "where": [["name", "=", name]], "loadOptions": ["name"]},
    )
    for row in result.values:
        if row.get("name") == name and isinstance(row.get("options"), list):
            return [str(option["name"]) for option in row["options"]]
    return None


def check_site(settings: CiviCRMSettings, api_key: str, site_key: str | None = None) -> SiteCheck:
    """Probe the site the way a load would use it; problems say what to fix and where."""
    specs = entity_specs(settings)
    wanted: dict[str, list[str]] = {}
    for key in settings.entities:
        spec = specs[key]
        wanted.setdefault(spec.entity, []).extend(spec.fields)
    with CiviCRMClient(settings, api_key, site_key) as client:
        report = client.probe(wanted)
        check = SiteCheck(
            report.version,
            report.permissions,
            visible=report.visible,
            notes=report.notes,
            problems=list(report.problems),
        )
        for entity, names in report.entities.items():
            check.entities[entity] = len(names)
            custom = sorted(n for n in names if "." in n)
            if custom:
                check.custom_fields[entity] = custom
        if report.permissions.get("access all cases and activities") is False:
            return check  # cases and activities cannot be read: nothing more to list
        roles = dict(OPTION_ROLES)
        outcome = settings.outcome_fields
        if outcome is not None:
            roles["outcomes"] = ("Activity", outcome.outcome.split(":")[0])
            if outcome.status:
                roles["outcome_status"] = ("Activity", outcome.status.split(":")[0])
        for role, (entity, name) in roles.items():
            if entity not in report.entities or name not in report.entities[entity]:
                continue  # already reported as a missing field
            try:
                names = _option_names(client, entity, name)
            except CiviCRMError as exc:
                check.problems.append(f"{entity}.{name}: {exc.problem}")
                continue
            if names is None:
                check.problems.append(
                    f"{entity} field '{name}' has no option list, so its values cannot be "
                    "mapped by name: point connector.outcome_fields at the option field"
                )
                continue
            check.labels[role] = names
    return check
