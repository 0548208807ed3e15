"""OAuth token requests: client credentials and JWT bearer, both with httpx.

Salesforce's token response has no refresh token and no expiry; the client simply asks again
when the API says ``INVALID_SESSION_ID``. Secrets are never logged or put into messages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt

from connectors.errors import PermanentSourceError, TransientSourceError
from connectors.salesforce_npsp.settings import (
    ClientCredentials,
    Credentials,
    JwtBearerCredentials,
    SalesforceSettings,
)

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class SalesforceAuthError(PermanentSourceError):
    """The org refused our credentials: a person must fix the connected app or the secret."""


@dataclass(frozen=True)
class Token:
    access_token: str
    instance_url: str

    def __repr__(self) -> str:
        return f"Token(instance_url={self.instance_url!r}, access_token=***)"


def jwt_assertion(settings: SalesforceSettings, credentials: JwtBearerCredentials) -> str:
    """RS256 assertion: iss = consumer key, sub = username, aud = login URL, short expiry."""
    if not settings.username:
        raise SalesforceAuthError(
            "JWT bearer flow needs the integration user's username: set 'username' in the "
            "member's salesforce settings"
        )
    try:
        key = credentials.key()
    except (OSError, ValueError) as err:
        path = credentials.private_key_path or "(none)"
        raise SalesforceAuthError(
            f"cannot read the JWT private key file {Path(str(path)).name!r} ({type(err).__name__}):"
            " check the key file path the member's config points at"
        ) from None
    claims = {
        "iss": settings.client_id,
        "sub": settings.username,
        "aud": settings.login_url.rstrip("/"),
        "exp": int(time.time()) + 180,
    }
    try:
        return jwt.encode(claims, key, algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError) as err:
        raise SalesforceAuthError(
            "the JWT private key is not a usable RSA private key in PEM form "
            f"({type(err).__name__}): check the key file the member's config points at"
        ) from None


def fetch_token(
    http: httpx.Client, settings: SalesforceSettings, credentials: Credentials
) -> Token:
    """POST the token request; a 400 means bad credentials, a 5xx or network error is transient."""
    form: dict[str, str]
    if isinstance(credentials, ClientCredentials):
        form = {
            "grant_type": "client_credentials",
            "client_id": settings.client_id,
            "client_secret": credentials.client_secret,
        }
    else:
        form = {"grant_type": JWT_BEARER_GRANT, "assertion": jwt_assertion(settings, credentials)}
    url = settings.login_url.rstrip("/") + "/services/oauth2/token"
    try:
        response = http.post(url, data=form)
    except httpx.HTTPError as err:
        raise TransientSourceError(
            f"cannot reach the Salesforce token endpoint {settings.login_url} "
            f"({type(err).__name__}); check the login URL and the network, then retry"
        ) from None
    if response.status_code >= 500 or response.status_code in (420, 429):
        raise TransientSourceError(
            f"Salesforce token endpoint answered {response.status_code}; retry later"
        )
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or "access_token" not in body:
        error = body.get("error", f"HTTP {response.status_code}") if isinstance(body, dict) else ""
        detail = body.get("error_description", "") if isinstance(body, dict) else ""
        flow = "client credentials" if isinstance(credentials, ClientCredentials) else "JWT bearer"
        raise SalesforceAuthError(
            f"Salesforce refused the {flow} login ({error}: {detail}). Check the connected "
            "app's consumer key, that the secret or certificate matches it, that the flow is "
            "enabled for the app and the integration user is pre-authorised, then retry"
        )
    instance = settings.instance_url or body.get("instance_url") or settings.login_url
    # The token goes to whatever instance the login answer names: hold that URL to the same
    # rules as the member's own (https; no credentials or secrets in it).
    from connectors.scope import url_problems

    if not isinstance(instance, str) or url_problems(instance):
        raise SalesforceAuthError(
            "the Salesforce login answered with an instance URL the hub will not send the "
            "access token to (it must be https://, without user name or secret-looking "
            "parameters); check connector.login_url, or set connector.instance_url"
        )
    return Token(access_token=body["access_token"], instance_url=instance.rstrip("/"))
