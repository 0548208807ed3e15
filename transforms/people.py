"""Normalise the contact fields of canonical people loaded from CRMs.

Spreadsheet rows are normalised as they are read; CRM records arrive as their users typed
them. Phone numbers become E.164 (member's default region), postcodes and e-mails take the
hub's one form, with the same parsers (``connectors.values``) so linkage compares like with
like. A value that cannot be normalised is dropped and the drop recorded in quarantine as a
warning, never silently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa

from connectors.members import Member
from connectors.rules import load_rule
from connectors.values import ValueProblem, parse_email, parse_phone, parse_postcode
from transforms.quality.rules import REJECTED_COLUMNS
from transforms.warehouse import Session

# Where each CRM keeps a person and their contact fields, so a quarantine row names the
# object and the field the member must correct.
SOURCE_FIELDS: dict[str, tuple[str, dict[str, str]]] = {
    "salesforce_npsp": (
        "Contact",
        {"phone": "Phone", "postcode": "MailingPostalCode", "email": "Email"},
    ),
    "civicrm": (
        "Contact",
        {"phone": "Phone.phone", "postcode": "Address.postal_code", "email": "Email.email"},
    ),
}

FIELDS: dict[str, Callable[[Any, str], Any]] = {
    "phone": lambda value, region: parse_phone(value, region),
    "postcode": lambda value, region: parse_postcode(value, region),
    "email": lambda value, _region: parse_email(value),
}


def normalise_people(session: Session, member: Member) -> int:
    """Normalise phone, postcode and e-mail of the member's canonical people; return how
    many values were dropped (each recorded in quarantine.rejected_rows as a warning)."""
    region = getattr(member.connector, "phone_region", "GB")
    source_object, field_names = SOURCE_FIELDS.get(member.connector.kind, (None, {}))
    rows = session.fetchall(
        "SELECT source_id, phone, postcode, email, _load_id FROM canonical.person "
        "WHERE org_id = ? AND NOT is_deleted",
        [member.org_id],
    )
    fixed: dict[str, list[Any]] = {"source_id": [], "phone": [], "postcode": [], "email": []}
    dropped = 0
    for source_id, phone, postcode, email, load_id in rows:
        fixed["source_id"].append(source_id)
        for name, value in (("phone", phone), ("postcode", postcode), ("email", email)):
            try:
                clean = FIELDS[name](value, region) if value is not None else None
            except ValueProblem as problem:
                clean = None
                dropped += 1
                session.execute(
                    f"INSERT INTO quarantine.rejected_rows ({REJECTED_COLUMNS}) VALUES "
                    "(?, ?, 'person', ?, NULL, ?, ?, ?, ?, ?, 'warning', 'mapping', ?)",
                    [
                        member.org_id,
                        member.connector.kind,
                        source_object,
                        source_id,
                        field_names.get(name, name),
                        str(value),
                        str(problem).replace("in the file", "in the CRM"),
                        load_rule(problem.code),
                        load_id,
                    ],
                )
            fixed[name].append(clean)
    if not rows:
        return 0
    session.replace_table("hub", "person_fields_normalised", pa.table(fixed))
    session.execute(
        "UPDATE canonical.person SET phone = n.phone, postcode = n.postcode, email = n.email "
        "FROM hub.person_fields_normalised AS n "
        "WHERE canonical.person.org_id = ? AND canonical.person.source_id = n.source_id",
        [member.org_id],
    )
    session.execute("DROP TABLE hub.person_fields_normalised")
    return dropped
