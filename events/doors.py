"""A member's doors into the receiver: its webhook key and Outbound Message token, resolved.

Why apart from the member file: the YAML holds only references (``{env: ...}``); the values
are read here, checked for shape (a ``whsec_`` key that is not base64 would verify nothing
the sender signs), and turned into what the receiver compares against. ``hub check`` shows
the same problems, so an operator sees a missing or malformed secret before a CRM does.
Problems name the variable or file, never the value.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from standardwebhooks import Webhook

from connectors.errors import MemberConfigError
from connectors.members import Member, SecretRef
from connectors.salesforce_npsp.ids import id15

WHSEC_PREFIX = "whsec_"
MIN_WEBHOOK_KEY_BYTES = 16
"""Standard Webhooks keys are 24-64 random bytes; anything under 16 is guessable."""
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,200}$")


@dataclass(frozen=True)
class Doors:
    """What the receiver checks a member's requests against (None: that door is closed)."""

    org_id: str
    webhook: Webhook | None
    outbound_token: bytes | None
    salesforce_org15: str | None
    problems: dict[str, str]
    """Door ("webhook_secret", "outbound_message_token") -> why it is configured but cannot
    open (the secret is missing or malformed): the receiver answers 503 so senders retry."""

    @property
    def webhook_configured(self) -> bool:
        return self.webhook is not None or "webhook_secret" in self.problems

    @property
    def outbound_configured(self) -> bool:
        return self.outbound_token is not None or "outbound_message_token" in self.problems


def _where(ref: SecretRef) -> str:
    return f"environment variable {ref.env}" if ref.env else f"key file {ref.file}"


def webhook_key(secret: str) -> bytes | None:
    """The key bytes of a ``whsec_<base64>`` secret (the prefix optional), or None when it is
    not strict base64 of at least 16 bytes.

    Strict: the package's own decoding skips characters outside the base64 alphabet, so a
    secret pasted with a stray character would quietly become a different key.
    """
    text = secret.strip()
    if text.startswith(WHSEC_PREFIX):
        text = text[len(WHSEC_PREFIX) :]
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if len(key) >= MIN_WEBHOOK_KEY_BYTES else None


def resolve_doors(member: Member) -> Doors:
    """Read the member's event secrets (at request time, never at import)."""
    events = member.events
    problems: dict[str, str] = {}
    webhook: Webhook | None = None
    token: bytes | None = None
    if events.webhook_secret is not None:
        ref = events.webhook_secret
        try:
            key = webhook_key(ref.resolve())
        except MemberConfigError as err:
            problems["webhook_secret"] = "; ".join(err.problems)
        else:
            if key is None:
                problems["webhook_secret"] = (
                    f"the secret in {_where(ref)} is not a Standard Webhooks key: it must be "
                    f"'{WHSEC_PREFIX}' followed by the base64 of at least "
                    f"{MIN_WEBHOOK_KEY_BYTES} random bytes (e.g. the output of "
                    "`python -c \"import base64,os;print('whsec_'+base64.b64encode("
                    'os.urandom(32)).decode())"`)'
                )
            else:
                webhook = Webhook(key)
    if events.outbound_message_token is not None:
        ref = events.outbound_message_token
        try:
            value = ref.resolve().strip()
        except MemberConfigError as err:
            problems["outbound_message_token"] = "; ".join(err.problems)
        else:
            if _TOKEN.match(value):
                token = value.encode()
            else:
                problems["outbound_message_token"] = (
                    f"the token in {_where(ref)} must be 16-200 letters, digits, '-' or '_' "
                    "(it is part of the endpoint URL); e.g. the output of "
                    '`python -c "import secrets;print(secrets.token_urlsafe(24))"`'
                )
    org = events.organization_id
    return Doors(
        org_id=member.org_id,
        webhook=webhook,
        outbound_token=token,
        salesforce_org15=id15(org) if org else None,
        problems=problems,
    )


def describe_doors(member: Member) -> list[tuple[bool, str]]:
    """Lines for ``hub check`` / ``hub members``: (ok, text) per configured door."""
    events = member.events
    if events.webhook_secret is None and events.outbound_message_token is None:
        return []
    doors = resolve_doors(member)
    lines: list[tuple[bool, str]] = []
    for name, label, path in (
        ("webhook_secret", "webhook", f"/members/{member.org_id}/webhook"),
        (
            "outbound_message_token",
            "Salesforce Outbound Messages",
            f"/members/{member.org_id}/salesforce/outbound/<token>",
        ),
    ):
        ref = getattr(events, name)
        if ref is None:
            continue
        if name in doors.problems:
            lines.append(
                (
                    False,
                    f"events: {label} door closed (the receiver answers 503 until fixed): "
                    f"events.{name}: {doors.problems[name]}",
                )
            )
        else:
            lines.append((True, f"events: {label} accepted at POST {path} ({_where(ref)})"))
    return lines
