"""What an event body says changed: Salesforce CDC, the hub's generic change body, and
Salesforce Outbound Messages (SOAP).

Only the entity, the action and record ids are kept (``events.inbox.Change``): a CDC event or
an Outbound Message also carries the record's changed fields, which may be personal data and
are never stored. Every parse error is a ``BodyError`` whose message names the part of the
body that is wrong, never its value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import orjson
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from events.inbox import ACTIONS, MAX_ID_LENGTH, Change, EventKind

MAX_CHANGES = 1_000
"""Changes one body may list: a relay batches, but a body of more is not one event."""

# Salesforce CDC ``changeType`` -> the inbox's action. GAP_* means Salesforce could not
# produce the event's details; GAP_OVERFLOW that a transaction changed too many records to
# list: either way the targeted ids cannot be trusted, so the entity's window is reloaded.
CDC_ACTIONS = {
    "CREATE": "create",
    "UPDATE": "update",
    "DELETE": "delete",
    "UNDELETE": "undelete",
    "GAP_CREATE": "gap",
    "GAP_UPDATE": "gap",
    "GAP_DELETE": "gap",
    "GAP_UNDELETE": "gap",
    "GAP_OVERFLOW": "overflow",
    "OVERFLOW": "overflow",
}

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND_NS = "http://soap.sforce.com/2005/09/outbound"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
MAX_NOTIFICATIONS = 100
"""Salesforce puts at most 100 notifications in one Outbound Message (the WSDL's maxOccurs)."""

ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}">'
    "<soapenv:Body>"
    f'<notificationsResponse xmlns="{OUTBOUND_NS}"><Ack>true</Ack></notificationsResponse>'
    "</soapenv:Body>"
    "</soapenv:Envelope>"
).encode()
"""The acknowledgement the Outbound Messaging WSDL defines (``notificationsResponse`` with
``Ack`` true, in the outbound namespace); anything else and Salesforce retries for 24 hours."""


class BodyError(ValueError):
    """The body is not JSON/XML, or not the shape of any event the receiver knows (400)."""


@dataclass(frozen=True)
class ParsedJson:
    """A webhook body, understood."""

    kind: EventKind
    changes: tuple[Change, ...]


def _id(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BodyError(f"{where}: record ids must be strings or whole numbers")
    text = str(value)
    if not text or len(text) > MAX_ID_LENGTH:
        raise BodyError(f"{where}: record ids must be 1-{MAX_ID_LENGTH} characters")
    return text


def _ids(values: Any, where: str) -> tuple[str, ...]:
    """Record ids; a wildcard ("001*", as an overflow event may carry) means "some records
    of this kind", so none are kept and the change is untargeted."""
    if values is None:
        return ()
    if not isinstance(values, list):
        raise BodyError(f"{where}: must be a list of record ids")
    ids = tuple(_id(v, where) for v in values)
    if any("*" in i for i in ids):
        return ()
    return tuple(dict.fromkeys(ids))


def _entity(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 100:
        raise BodyError(f"{where}: must be an object name of 1-100 characters")
    return value


def cdc_change(header: Any) -> Change:
    """One Salesforce Change Data Capture event's ``ChangeEventHeader`` as a change."""
    if not isinstance(header, dict):
        raise BodyError("ChangeEventHeader: must be an object")
    entity = _entity(header.get("entityName"), "ChangeEventHeader.entityName")
    if entity is None:
        raise BodyError("ChangeEventHeader.entityName: required")
    change_type = header.get("changeType")
    if not isinstance(change_type, str):
        raise BodyError("ChangeEventHeader.changeType: required")
    # An unknown (newer) change type still says these records changed.
    action = CDC_ACTIONS.get(change_type.upper(), "change")
    ids = _ids(header.get("recordIds"), "ChangeEventHeader.recordIds")
    return Change(entity, action, ids)


def _generic_change(item: Any, where: str) -> Change:
    if not isinstance(item, dict):
        raise BodyError(f"{where}: must be an object with entity, action and ids")
    action = item.get("action", "change")
    if not isinstance(action, str) or action.lower() not in ACTIONS:
        raise BodyError(f"{where}.action: must be one of {', '.join(sorted(ACTIONS))}")
    entity = _entity(item.get("entity"), f"{where}.entity")
    return Change(entity, action.lower(), _ids(item.get("ids"), f"{where}.ids"))


def parse_json_event(body: bytes) -> ParsedJson:
    """A Standard Webhooks body: a Salesforce CDC event (bare, or wrapped in ``payload`` as
    relays send it), or the hub's generic ``{"type": ..., "changes": [...]}``.

    A JSON object that is neither still says "something of this member's changed": one
    untargeted change, so a relay the hub does not know yet still triggers a reload.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise BodyError("the body is not valid JSON") from err
    if not isinstance(data, dict):
        raise BodyError("the body must be a JSON object")
    event = data.get("payload") if isinstance(data.get("payload"), dict) else data
    if "ChangeEventHeader" in event:
        return ParsedJson("salesforce_cdc", (cdc_change(event["ChangeEventHeader"]),))
    changes = data.get("changes")
    if changes is None:
        return ParsedJson("standard_webhook", (Change(None, "change"),))
    if not isinstance(changes, list):
        raise BodyError("changes: must be a list")
    if len(changes) > MAX_CHANGES:
        raise BodyError(f"changes: at most {MAX_CHANGES} in one event")
    parsed = tuple(_generic_change(c, f"changes[{i}]") for i, c in enumerate(changes))
    return ParsedJson("standard_webhook", parsed or (Change(None, "change"),))


@dataclass(frozen=True)
class Notification:
    """One notification of an Outbound Message: its id (stable across Salesforce's retries)
    and the record it is about."""

    notification_id: str
    entity: str
    record_id: str


@dataclass(frozen=True)
class OutboundMessage:
    organization_id: str
    notifications: tuple[Notification, ...]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(parent: Element, name: str, namespace: str | None = None) -> Element | None:
    """The first child called ``name`` (in ``namespace`` if given, else in any)."""
    for child in parent:
        if not isinstance(child.tag, str):
            continue
        if namespace is not None and child.tag == f"{{{namespace}}}{name}":
            return child
        if namespace is None and _local(child.tag) == name:
            return child
    return None


def _text(parent: Element, name: str, where: str) -> str:
    node = _child(parent, name)
    text = (node.text or "").strip() if node is not None else ""
    if not text or len(text) > MAX_ID_LENGTH:
        raise BodyError(f"{where}.{name}: required")
    return text


def parse_outbound_message(body: bytes) -> OutboundMessage:
    """A Salesforce Outbound Message (SOAP 1.1 ``notifications`` call).

    Parsed with defusedxml: a DTD, an entity declaration or an external reference is refused
    outright (no entity expansion: a few hundred bytes could otherwise become gigabytes).
    """
    try:
        root = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError) as err:
        raise BodyError(f"the body is not acceptable XML ({type(err).__name__})") from err
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise BodyError("not a SOAP 1.1 Envelope")
    soap_body = _child(root, "Body", SOAP_ENV)
    if soap_body is None:
        raise BodyError("Envelope: no Body")
    call = _child(soap_body, "notifications", OUTBOUND_NS)
    if call is None:
        raise BodyError(f"Body: no notifications element in namespace {OUTBOUND_NS}")
    org = _text(call, "OrganizationId", "notifications")
    found: list[Notification] = []
    for node in _children(call, "Notification"):
        if len(found) == MAX_NOTIFICATIONS:
            raise BodyError(f"notifications: more than {MAX_NOTIFICATIONS} Notification")
        where = f"Notification[{len(found)}]"
        notification_id = _text(node, "Id", where)
        sobject = _child(node, "sObject")
        if sobject is None:
            raise BodyError(f"{where}: no sObject")
        kind = sobject.get(XSI_TYPE) or ""
        entity = kind.rsplit(":", 1)[-1]
        if not entity or len(entity) > 100:
            raise BodyError(f"{where}.sObject: no xsi:type naming the object")
        found.append(Notification(notification_id, entity, _text(sobject, "Id", where)))
    if not found:
        raise BodyError("notifications: no Notification")
    return OutboundMessage(org, tuple(found))


def _children(parent: Element, name: str) -> Iterable[Element]:
    for child in parent:
        if isinstance(child.tag, str) and _local(child.tag) == name:
            yield child
