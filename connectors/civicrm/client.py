"""A small, strict CiviCRM APIv4 REST client (httpx).

The wire format is easy to get subtly wrong, so it lives in one place:
- parameters travel as ONE form field ``params`` holding a JSON string; a JSON body is not
  read by CiviCRM and the call silently runs with no parameters;
- ``X-Civi-Auth: Bearer <api key>`` (authx), plus ``X-Civi-Key`` when the site requires its
  site key as a guard;
- ``X-Requested-With: XMLHttpRequest`` marks a web-service call; without it CiviCRM refuses
  with a 400 "SECURITY ALERT";
- APIv4 ``get`` has no default limit, so callers always page explicitly (see ``source.py``);
- several calls can share ONE request (``batch``): ``POST {site}/civicrm/ajax/api4`` with no
  entity or action in the path and the form field ``calls`` holding a JSON object
  ``{index: [entity, action, params]}`` (CRM_Api4_Page_AJAX). On a real site every request
  pays a CMS bootstrap, so a few hundred counts cost about what one does. The answer is keyed
  by the same indexes, each a result or that call's own error, and the HTTP status is 200 if
  any call succeeded, else the first failing call's status: a batch is judged per call.

Every failure becomes a TransientSourceError (retry may help: 5xx, 503, timeouts) or a
PermanentSourceError (a person must fix a key, a permission, a field name), with the fix
spelled out. Keys are never logged or put into messages.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import orjson

from connectors.civicrm.settings import CiviCRMSettings, UrlStyle
from connectors.deadline import LoadDeadline, deadline, deadline_transport, pause, request_seconds
from connectors.errors import PermanentSourceError, TransientSourceError

log = logging.getLogger(__name__)
_T = TypeVar("_T")

API_ROUTE = "civicrm/ajax/api4"
# Calls sent in one batched request at most: CiviCRM runs them one after another inside one
# PHP request, so an unbounded batch could outlive the request deadline or PHP's own limit.
MAX_BATCH_CALLS = 200

# Permissions the connector relies on, and what a user holding each one can count (entity,
# where, what the rows are called). CiviCRM refuses an entity outright (403) only for an
# entity permission (cases, contributions); contacts are filtered by ACL clauses instead, so
# without 'view all contacts' or 'access deleted contacts' the answer is quietly shorter, down
# to none. Seeing a row proves the permission; an empty answer cannot tell a missing one from
# a site with no such rows, and is reported as not confirmed, never as granted.
PERMISSION_PROBES: dict[str, tuple[str, list[Any], str]] = {
    "view all contacts": ("Contact", [["is_deleted", "=", False]], "contacts"),
    "access deleted contacts": ("Contact", [["is_deleted", "=", True]], "trashed contacts"),
    "access all cases and activities": ("Case", [], "cases"),
    "access CiviContribute": ("Contribution", [], "contributions"),
}
# What a user lacking a permission that is only an ACL filter gets, and what it costs.
UNCONFIRMED = {
    "view all contacts": "no contact is visible, and CiviCRM answers a missing 'view all "
    "contacts' with no rows rather than an error: grant it to the CiviCRM user's role",
    "access deleted contacts": "no trashed contact is visible; without this permission "
    "CiviCRM hides trashed contacts rather than refusing, and the hub then takes them as "
    "deleted for good (their records leave the hub either way)",
    "access all cases and activities": "no case is visible to the API user",
}

# Fields the API user may not see are not an error either: APIv4 leaves them out of
# ``getFields`` and out of ``get`` results (civicrm-core Api4SelectQuery drops them from
# ``select``). A custom field shows only with this permission, or where a CiviCRM ACL grants
# View on its custom group; a core field only to users holding the permission in its spec.
CUSTOM_DATA = "access all custom data"


def field_grant(name: str) -> str:
    """What to grant the API user so that CiviCRM shows it field ``name`` (APIv4 spelling)."""
    base = name.partition(":")[0]
    if "." in base:  # custom fields are Group.field
        group = base.split(".", 1)[0]
        return (
            f"'{CUSTOM_DATA}' to the CiviCRM user's role, or a CiviCRM ACL granting it View "
            f"on custom group '{group}'"
        )
    return (
        "the permission CiviCRM requires for this field (its definition names one, and "
        "CiviCRM leaves it out for users without it) to the CiviCRM user's role"
    )


def api_url(site_url: str, url_style: UrlStyle, entity: str, action: str) -> str:
    """The endpoint for one call in the site's URL style (CMS integrations route differently)."""
    return _route_url(site_url, url_style, f"{API_ROUTE}/{quote(entity)}/{quote(action)}")


def batch_url(site_url: str, url_style: UrlStyle) -> str:
    """The multi-call endpoint: the API route with no entity or action after it."""
    return _route_url(site_url, url_style, API_ROUTE)


def _route_url(site_url: str, url_style: UrlStyle, route: str) -> str:
    site = site_url.rstrip("/")
    if url_style in ("clean", "standalone"):
        return f"{site}/{route}"
    if url_style == "wordpress":
        return f"{site}/?civiwp=CiviCRM&q={route}"
    if url_style == "wordpress_admin":
        return f"{site}/wp-admin/admin.php?page=CiviCRM&q={route}"
    raise ValueError(f"unknown url_style {url_style!r}")


class CiviCRMError(PermanentSourceError):
    """A CiviCRM call that a retry will not fix; ``fix`` says what a person should change."""

    def __init__(self, status: int | None, problem: str, fix: str) -> None:
        self.status = status
        self.problem = problem
        self.fix = fix
        prefix = f"CiviCRM answered {status}: " if status else "CiviCRM: "
        super().__init__(f"{prefix}{problem}. Fix: {fix}")


class CiviCRMTransientError(TransientSourceError):
    """A CiviCRM call that failed after all retries, but may succeed later."""

    def __init__(self, status: int | None, problem: str) -> None:
        self.status = status
        self.problem = problem
        super().__init__(f"CiviCRM is unavailable ({status or 'no answer'}): {problem}")


@dataclass
class ApiResult:
    """One APIv4 response: ``values`` plus the counts CiviCRM reports."""

    values: list[dict[str, Any]]
    count: int
    count_matched: int | None
    raw: dict[str, Any] = field(repr=False)


@dataclass
class ProbeReport:
    """What ``hub check`` shows for a CiviCRM member (no personal data)."""

    version: str
    # True: proven (a row seen, or the entity answered); False: refused (403); None: not
    # confirmed (an empty answer, which is also how CiviCRM hides what a user may not see).
    permissions: dict[str, bool | None]
    entities: dict[str, list[str]]
    problems: list[str]
    visible: dict[str, str] = field(default_factory=dict)  # permission -> "12 contacts"
    notes: dict[str, str] = field(default_factory=dict)  # permission -> why not confirmed


class CiviCRMClient:
    """Calls APIv4 over REST with bounded retries; use as a context manager."""

    def __init__(
        self,
        settings: CiviCRMSettings,
        api_key: str,
        site_key: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        load_deadline: LoadDeadline | None = None,
    ) -> None:
        """``load_deadline`` bounds every call this client makes for one member's load
        (None outside a load, e.g. in ``hub check``, where each request's own deadline is
        the only bound)."""
        if not api_key:
            raise CiviCRMError(
                None,
                "no API key was given",
                "set the member's api_key reference to the CiviCRM user's API key",
            )
        self.settings = settings
        headers = {
            "X-Civi-Auth": f"Bearer {api_key}",
            "X-Requested-With": "XMLHttpRequest",
            "Accept": "application/json",
        }
        if site_key:
            headers["X-Civi-Key"] = site_key
        timeout = httpx.Timeout(
            settings.read_timeout, connect=settings.connect_timeout, pool=settings.connect_timeout
        )
        self._http = httpx.Client(
            headers=headers, timeout=timeout, transport=transport or deadline_transport()
        )
        self._sleep = sleep
        self._load = load_deadline

    def __enter__(self) -> CiviCRMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def call(self, entity: str, action: str, params: dict[str, Any] | None = None) -> ApiResult:
        """One APIv4 call; retries 5xx, 503, 429 and network errors with backoff.

        Any other 4xx (a validation error, a missing permission or API) fails at once: the
        same request would be refused the same way. Past the load's deadline the call raises
        ``LoadDeadlineExceeded`` instead of trying again.
        """
        url = api_url(self.settings.site_url, self.settings.url_style, entity, action)
        form = {"params": json.dumps(params or {}, separators=(",", ":"))}
        return self._post(url, form, f"{entity}.{action}", lambda r: _parse(entity, action, r))

    def batch(self, calls: list[tuple[str, str, dict[str, Any]]]) -> list[ApiResult]:
        """Several APIv4 calls, ``MAX_BATCH_CALLS`` to a request; results in the same order.

        Same authentication, retries and deadlines as ``call``. One failed call fails the
        batch, raised with its entity and action named (never its parameters or values): a
        transient one (a deadlock, a generic 500) retries the whole request, which is safe
        because the callers batch reads only.
        """
        results: list[ApiResult] = []
        url = batch_url(self.settings.site_url, self.settings.url_style)
        for start in range(0, len(calls), MAX_BATCH_CALLS):
            chunk = calls[start : start + MAX_BATCH_CALLS]
            # Keys that are not integers: PHP would encode a 0..n-1 keyed answer as a list.
            body = {f"c{i}": [e, a, p] for i, (e, a, p) in enumerate(chunk)}
            form = {"calls": json.dumps(body, separators=(",", ":"))}
            label = _batch_label(chunk)
            results.extend(self._post(url, form, label, lambda r, c=chunk: _parse_batch(c, r)))
        return results

    def _post(
        self, url: str, form: dict[str, str], label: str, parse: Callable[[httpx.Response], _T]
    ) -> _T:
        """POST one form with bounded retries; ``parse`` raises CiviCRMTransientError to retry."""
        attempts = self.settings.max_retries + 1
        last: CiviCRMTransientError | None = None
        for attempt in range(attempts):
            if attempt:
                delay = self.settings.backoff_seconds * (2 ** (attempt - 1))
                log.warning(
                    "CiviCRM %s: %s; retry %d/%d in %.1fs",
                    label,
                    last,
                    attempt,
                    attempts - 1,
                    delay,
                )
                pause(delay, self._sleep, self._load)
            seconds = request_seconds(self.settings.request_deadline, self._load)
            try:
                with deadline(seconds):
                    response = self._http.post(url, data=form)
            except httpx.TimeoutException as exc:
                if self._load is not None:
                    self._load.check()  # cut by the load's deadline, not a slow request
                last = CiviCRMTransientError(None, f"timed out ({type(exc).__name__})")
                continue
            except httpx.TransportError as exc:
                last = CiviCRMTransientError(None, f"could not connect ({type(exc).__name__})")
                continue
            try:
                return parse(response)
            except CiviCRMTransientError as exc:
                last = exc
        assert last is not None
        raise last

    def get(self, entity: str, params: dict[str, Any]) -> ApiResult:
        return self.call(entity, "get", params)

    def field_names(self, entity: str) -> list[str]:
        """Field names ``getFields`` reports, custom fields as ``Group.field``."""
        result = self.call(entity, "getFields", {"select": ["name"], "loadOptions": False})
        return [str(v["name"]) for v in result.values]

    def version(self) -> str:
        """The site's CiviCRM version, from the current domain (``Domain.get``).

        APIv4 has no ``System.get`` (civicrm-core's System entity has check, flush and
        getFields); the version the database was upgraded to is kept on the domain.
        """
        result = self.call("Domain", "get", {"select": ["version"], "currentDomain": True})
        return str(result.values[0].get("version") or "unknown") if result.values else "unknown"

    def probe(self, entities: dict[str, list[str]] | None = None) -> ProbeReport:
        """Authenticate, read the version, test each permission and check the fields exist.

        ``entities`` maps an entity to fields the member's config uses; a missing field is a
        problem to report now rather than a failed load later.
        """
        version = self.version()
        permissions: dict[str, bool | None] = {}
        problems: list[str] = []
        visible: dict[str, str] = {}
        notes: dict[str, str] = {}
        for permission, (entity, where, rows) in PERMISSION_PROBES.items():
            try:
                answer = self.get(entity, {"select": ["row_count"], "where": where})
            except CiviCRMError as exc:
                if exc.status != 403:
                    raise
                permissions[permission] = False
                problems.append(
                    f"the API user lacks '{permission}': grant it to the CiviCRM user's role"
                )
                continue
            count = answer.count_matched if answer.count_matched is not None else answer.count
            visible[permission] = f"{count} {rows} visible"
            if count:
                permissions[permission] = True
            elif permission in UNCONFIRMED:
                permissions[permission] = None
                notes[permission] = UNCONFIRMED[permission]
                if permission == "view all contacts":  # a load would read nobody
                    problems.append(f"'{permission}': {UNCONFIRMED[permission]}")
            else:
                permissions[permission] = True  # an entity permission: the answer proves it
        found: dict[str, list[str]] = {}
        for entity, wanted in (entities or {}).items():
            try:
                names = set(self.field_names(entity))
            except CiviCRMError as exc:
                problems.append(f"{entity}: {exc.problem}")
                continue
            found[entity] = sorted(names)
            for name in wanted:
                base = name.split(":")[0]
                if base not in names:
                    # Hidden and absent look the same to this user: name both causes.
                    problems.append(
                        f"{entity} has no field '{base}' the API user can see: grant "
                        f"{field_grant(base)}; if the field does not exist on this site, "
                        "correct the member's config"
                    )
        return ProbeReport(version, permissions, found, problems, visible, notes)


def version_at_least(version: str, minimum: tuple[int, int]) -> bool:
    """Compare CiviCRM versions like '6.9.0' or '6.10.alpha1' numerically."""
    parts: list[int] = []
    for piece in version.split(".")[:2]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits or 0))
    return tuple(parts) >= minimum


def _parse(entity: str, action: str, response: httpx.Response) -> ApiResult:
    """Turn one HTTP answer into values or an explained error."""
    where = f"{entity}.{action}"
    payload = _answer(where, response)
    status = response.status_code
    if status != 200:
        _raise_error(where, status, str((payload or {}).get("error_message") or "").strip())
    return _result(where, status, payload)


def _parse_batch(
    calls: list[tuple[str, str, dict[str, Any]]], response: httpx.Response
) -> list[ApiResult]:
    """A multi-call answer: one result per call, or the first failed call's explained error.

    CiviCRM answers 200 when any call succeeded, so each entry is checked on its own; when
    every call failed the status is the first failure's, and the body is still keyed by call.
    A refusal of the whole request (400, 405) has the single-call error shape instead.
    """
    label = _batch_label(calls)
    payload = _answer(label, response)
    status = response.status_code
    if isinstance(payload, list):  # PHP writes an array keyed 0..n-1 (or an empty one) as a list
        payload = {str(i): v for i, v in enumerate(payload)}
    if not isinstance(payload, dict) or (status != 200 and "error_message" in payload):
        message = str((payload or {}).get("error_message") or "") if payload else ""
        _raise_error(label, status, message.strip())
    results = []
    for i, (entity, action, _) in enumerate(calls):
        where = f"{entity}.{action}"
        item = payload.get(f"c{i}")
        if not isinstance(item, dict):
            raise CiviCRMError(
                status,
                f"{where}: CiviCRM's batched answer has no result for this call",
                "check site_url and url_style (the address must reach CiviCRM's API, which "
                "answers several calls in one request since APIv4's first releases)",
            )
        if "values" not in item or "error_message" in item or "error_code" in item:
            failed = int(item.get("status") or (status if status != 200 else 500))
            _raise_error(where, failed, str(item.get("error_message") or "").strip())
        results.append(_result(where, 200, item))
    return results


def _batch_label(calls: list[tuple[str, str, dict[str, Any]]]) -> str:
    """What a batch is called in logs and errors: its calls' entity.action, no parameters."""
    names = sorted({f"{e}.{a}" for e, a, _ in calls})
    return f"batch of {len(calls)} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"


def _answer(where: str, response: httpx.Response) -> Any:
    """The JSON body, after the failures that come before CiviCRM's API runs (authx, routing,
    maintenance, overload), which look the same for one call and for a batch."""
    status = response.status_code
    if status == 401:
        body = response.text.strip()[:200]
        if "Invalid credential" in body:
            raise CiviCRMError(
                401,
                f"{where}: the API key was not recognised ('Invalid credential')",
                "check that the member's api_key reference resolves to the current API key of "
                "the CiviCRM user (keys change when they are regenerated)",
            )
        raise CiviCRMError(
            401,
            f"{where}: the API key is missing or not accepted ('{body or 'no reason given'}')",
            "check the member's api_key reference, that the CiviCRM user has the "
            "'authenticate with api key' permission, that authx allows API keys for REST "
            "(Administer > System Settings > Authentication), and set site_key if the site "
            "requires the site key as a guard",
        )
    if status == 404:
        raise CiviCRMError(
            404,
            f"{where}: no CiviCRM API at this address",
            "check site_url and url_style (clean, wordpress, wordpress_admin, standalone) "
            "against the address of the site's CiviCRM pages",
        )
    if status == 503 or (status >= 500 and not _is_json(response)):
        raise CiviCRMTransientError(status, f"{where}: site unavailable (maintenance or overload)")
    if status == 429:
        raise CiviCRMTransientError(status, f"{where}: rate limited")
    return _json(response)


def _raise_error(where: str, status: int, message: str) -> None:
    """Raise the explained error for a refused call (``where`` names it, never its values)."""
    if status == 400 and "SECURITY ALERT" in message:
        raise CiviCRMError(
            400,
            f"{where}: CiviCRM refused a request without the web-service marker",
            "send the header 'X-Requested-With: XMLHttpRequest' (a proxy may be stripping it)",
        )
    if status == 403:
        raise CiviCRMError(
            403,
            f"{where}: permission denied ({message or 'Authorization failed'})",
            "grant the CiviCRM user the missing permission ('access all cases and "
            "activities' for cases, 'access CiviContribute' for contributions); `hub check` "
            "lists what the user can see",
        )
    if status >= 500:
        if _looks_permanent(message):
            raise CiviCRMError(
                status,
                f"{where}: {message}",
                "correct the entity or field name in the member's config; custom fields are "
                "named 'Group.field' (list them with getFields or `hub check`)",
            )
        raise CiviCRMTransientError(status, f"{where}: {message or 'server error'}")
    raise CiviCRMError(status, f"{where}: unexpected answer {message!r}", "see CiviCRM logs")


def _result(where: str, status: int, payload: Any) -> ApiResult:
    if not isinstance(payload, dict) or "values" not in payload:
        raise CiviCRMError(
            status,
            f"{where}: the answer is not an APIv4 result",
            "check site_url and url_style: the address seems to reach a web page, not the API",
        )
    values = payload["values"]
    if isinstance(values, dict):  # some actions index results by id
        values = list(values.values())
    return ApiResult(
        values=values,
        count=int(payload.get("count", len(values))),
        count_matched=payload.get("countMatched"),
        raw=payload,
    )


def _is_json(response: httpx.Response) -> bool:
    return "json" in (response.headers.get("Content-Type") or "")


def _json(response: httpx.Response) -> Any:
    """The body as JSON, or None. orjson first: a 5,000-row page parses in about a third
    of the standard library's time, which a full read of 567,000 rows notices."""
    try:
        return orjson.loads(response.content)
    except ValueError:  # orjson.JSONDecodeError; also what orjson refuses and json takes
        try:
            return response.json()
        except ValueError:
            return None


def _looks_permanent(message: str) -> bool:
    """Bad field/entity errors will fail the same way on every retry."""
    lowered = message.lower()
    return any(
        marker in lowered
        for marker in ("invalid field", "does not exist", "illegal operator", "not supported")
    )
