"""The Salesforce REST client: auth, retries, API allocation, describe and SOQL paging.

Why it is shaped this way:
- Salesforce sessions have no stated expiry, so a 401 ``INVALID_SESSION_ID`` triggers one
  re-authentication and one retry, never a loop.
- 5xx, 420 and 429 are transient: bounded retries with exponential backoff, honouring
  ``Retry-After``. A 403 ``REQUEST_LIMIT_EXCEEDED`` means the 24-hour allocation is gone:
  retrying within the run only burns the member's quota, so it stops the run like the reserve.
  Any other 4xx (a validation error such as MALFORMED_QUERY or INVALID_FIELD, a missing
  permission) fails at once: the same request would be refused the same way.
- Within a member's load every attempt and backoff sleep is bounded by the load's deadline
  (``LoadDeadline``), on top of each request's own.
- Every response's ``Sforce-Limit-Info`` is read; before each request the client checks the
  member's configured reserve so other integrations of the charity keep working.
- A SOQL query whose URL would exceed the limit (414) is split into several narrower queries,
  each selecting ``Id``, whose rows are merged by ``Id``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson
import pyarrow as pa

from connectors.deadline import LoadDeadline, deadline, deadline_transport, pause, request_seconds
from connectors.errors import PermanentSourceError, TransientSourceError
from connectors.salesforce_npsp.auth import SalesforceAuthError, Token, fetch_token
from connectors.salesforce_npsp.columns import read_bulk_csv, typed_bulk_table
from connectors.salesforce_npsp.settings import Credentials, SalesforceSettings

log = logging.getLogger(__name__)

_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")
# Compound fields (address, geolocation) duplicate their component fields and Bulk rejects
# them; base64 bodies need a separate request per record. Neither is selected.
_SKIPPED_TYPES = {"address", "location", "base64"}
# Fields every split query repeats, so rows can be merged and ordered.
_KEY_FIELDS = ("Id", "SystemModstamp")
# Each Bulk job-status poll waits this much longer than the last (from bulk_poll_seconds).
_POLL_GROWTH = 1.5


class ApiAllocationReserveReached(PermanentSourceError):
    """The org's daily API allocation is at the member's reserve (or exhausted).

    Not a failure of the data: everything read so far is loaded and the cursor saved, so the
    next run (after the 24-hour window rolls on) resumes where this one stopped.
    """

    def __init__(self, used: int | None, maximum: int | None, exhausted: bool = False) -> None:
        self.used = used
        self.maximum = maximum
        self.exhausted = exhausted
        usage = f"{used}/{maximum} API requests used" if maximum else "allocation unknown"
        what = "exhausted" if exhausted else "at the configured reserve"
        super().__init__(
            f"Salesforce daily API allocation {what} ({usage}); stopped politely so the org "
            "keeps requests for its other integrations. The next run resumes from the saved "
            "cursor. To load more per day, lower 'reserve_percent' or raise the org's API "
            "allocation."
        )


class SalesforceApiError(PermanentSourceError):
    """The API rejected a request for a reason a retry cannot fix."""

    def __init__(self, status: int, code: str, message: str, advice: str) -> None:
        self.status = status
        self.code = code
        self.detail = message.strip()[:300]
        # Whole, for callers that look for the field or object it names (a SOQL echo first
        # can push that past what the message shows).
        self.full_message = message
        self.advice = advice
        super().__init__(f"Salesforce API {status} {code}: {self.detail}. {advice}")

    def on(self, resource: str, sobject: str) -> SalesforceApiError:
        """The same error naming the object whose read it stopped, with advice for it."""
        err = SalesforceApiError(
            self.status, self.code, self.detail, _advice(self.code, self.status, sobject)
        )
        err.args = (f"{resource} ({sobject}): {err}",)
        return err


class BulkQueryRejected(Exception):
    """Internal: Bulk API 2.0 refused or failed the job; the caller reads through REST."""


class QueryTooLong(Exception):
    """Internal: this SOQL URL would be refused with 414; the caller splits the field list."""


def _error_code(response: httpx.Response) -> tuple[str, str]:
    """(errorCode, message) from Salesforce's JSON array error body, tolerant of others."""
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:200]
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return str(body[0].get("errorCode", "")), str(body[0].get("message", ""))
    if isinstance(body, dict):
        return str(body.get("errorCode") or body.get("error", "")), str(body.get("message", ""))
    return "", ""


def selectable_fields(describe: dict[str, Any]) -> dict[str, str]:
    """Field name → describe type, for every field the integration user can read.

    Field-level security hides unreadable fields from describe entirely, so "present" is
    "readable"; compound and binary fields are left out (see ``_SKIPPED_TYPES``).
    """
    return {
        f["name"]: f["type"]
        for f in describe.get("fields", [])
        if f.get("type") not in _SKIPPED_TYPES
    }


class SalesforceClient:
    """One authenticated session to one org. Not thread-safe; one per pipeline run."""

    def __init__(
        self,
        settings: SalesforceSettings,
        credentials: Credentials,
        *,
        sleep: Callable[[float], None] = time.sleep,
        http: httpx.Client | None = None,
        load_deadline: LoadDeadline | None = None,
    ) -> None:
        """``load_deadline`` bounds every request this client makes for one member's load
        (None outside a load, e.g. in ``hub check``)."""
        self.settings = settings
        self._load = load_deadline
        self._credentials = credentials
        self._sleep = sleep
        self._http = http or httpx.Client(
            timeout=httpx.Timeout(
                settings.timeout_seconds, connect=min(10.0, settings.timeout_seconds)
            ),
            transport=deadline_transport(),
        )
        self._token: Token | None = None
        self.api_used: int | None = None
        self.api_max: int | None = None
        self.requests_made = 0
        self._sobjects: set[str] | None = None
        self._describes: dict[str, dict[str, Any]] = {}
        # Ids a split query read in some field groups only (see ``query_records``).
        self.unsettled_ids: set[str] = set()
        # One request at a time, as before pages were read ahead (connectors/read_ahead.py):
        # the helper thread fetching the next page and another object's resource, which dlt
        # runs in turn on the main thread, share this session, its token and its counters.
        self._lock = threading.RLock()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SalesforceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    @property
    def base(self) -> str:
        return f"{self.token.instance_url}/services/data/v{self.settings.api_version}"

    @property
    def token(self) -> Token:
        """The current session, logging in (with bounded retries on transient errors) if none."""
        attempt = 0
        while self._token is None:
            seconds = request_seconds(self.settings.request_deadline, self._load)
            try:
                with deadline(seconds):
                    self._token = fetch_token(self._http, self.settings, self._credentials)
            except TransientSourceError:
                if self._load is not None:
                    self._load.check()
                attempt += 1
                if attempt > self.settings.max_retries:
                    raise
                pause(self._delay(attempt, None), self._sleep, self._load)
        return self._token

    def _check_reserve(self) -> None:
        if self.api_used is None or not self.api_max:
            return
        remaining = self.api_max - self.api_used
        if remaining < self.api_max * self.settings.reserve_percent / 100:
            raise ApiAllocationReserveReached(self.api_used, self.api_max)

    def _read_limits(self, response: httpx.Response) -> None:
        match = _LIMIT_INFO.search(response.headers.get("Sforce-Limit-Info", ""))
        if match:
            self.api_used, self.api_max = int(match[1]), int(match[2])

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        delay = self.settings.backoff_seconds * (2 ** (attempt - 1))
        if response is not None:
            retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            if retry_after is not None:
                delay = max(delay, retry_after)
        return min(delay, self.settings.backoff_max_seconds)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
        cleanup: bool = False,
    ) -> httpx.Response:
        """Send one API request with re-auth, backoff and allocation checks.

        ``path`` is either relative to the versioned base (``/sobjects``) or an absolute
        server path (``/services/data/...``, as in ``nextRecordsUrl``). ``cleanup`` requests
        (aborting or deleting our own Bulk jobs) skip the reserve check: leaving jobs behind
        would cost the org more than the one request; for the same reason they may run past
        the load's deadline (each is still bounded by its own).
        """
        with self._lock:
            return self._send(method, path, params, headers, json_body, cleanup)

    def _send(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        headers: dict[str, str] | None,
        json_body: Any,
        cleanup: bool,
    ) -> httpx.Response:
        load = None if cleanup else self._load
        reauthenticated = False
        attempt = 0
        while True:
            if not cleanup:
                self._check_reserve()
            token = self.token
            url = token.instance_url + path if path.startswith("/services/") else self.base + path
            sent_headers = {"Authorization": f"Bearer {token.access_token}", **(headers or {})}
            seconds = request_seconds(self.settings.request_deadline, load)
            try:
                with deadline(seconds):
                    response = self._http.request(
                        method, url, params=params, headers=sent_headers, json=json_body
                    )
            except httpx.TransportError as err:
                if load is not None and isinstance(err, httpx.TimeoutException):
                    load.check()  # cut by the load's deadline, not a slow request
                attempt += 1
                if attempt > self.settings.max_retries:
                    raise TransientSourceError(
                        f"Salesforce did not answer {method} {_short(path)} after {attempt} "
                        f"attempts ({type(err).__name__}); the run can be retried later"
                    ) from None
                pause(self._delay(attempt, None), self._sleep, load)
                continue
            self.requests_made += 1
            self._read_limits(response)
            status = response.status_code
            if status < 400:
                return response
            code, message = _error_code(response)
            if status == 401:
                if reauthenticated:
                    raise SalesforceAuthError(
                        "Salesforce rejected a freshly issued session (INVALID_SESSION_ID "
                        "twice): check the connected app's session policies and IP "
                        "restrictions for the integration user"
                    )
                log.info("Salesforce session expired; re-authenticating once")
                self._token = None
                reauthenticated = True
                continue
            if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
                raise ApiAllocationReserveReached(self.api_used, self.api_max, exhausted=True)
            if status >= 500 or status in (420, 429):
                attempt += 1
                if attempt > self.settings.max_retries:
                    raise TransientSourceError(
                        f"Salesforce answered {status} {code} to {method} {_short(path)} "
                        f"{attempt} times; the org is busy or down, the run can be retried later"
                    )
                delay = self._delay(attempt, response)
                log.info("Salesforce answered %s; retrying in %.2fs", status, delay)
                pause(delay, self._sleep, load)
                continue
            if status == 414:
                raise QueryTooLong(path)
            raise SalesforceApiError(status, code, message, _advice(code, status))

    def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        return self.request("GET", path, params=params).json()

    # ------------------------------------------------------------------ discovery
    def versions(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get_json("/services/data/")
        return result

    def sobject_names(self) -> set[str]:
        """describeGlobal, once per client."""
        if self._sobjects is None:
            body = self.get_json("/sobjects")
            self._sobjects = {o["name"] for o in body.get("sobjects", [])}
        return self._sobjects

    def describe(self, sobject: str) -> dict[str, Any]:
        if sobject not in self._describes:
            self._describes[sobject] = self.get_json(f"/sobjects/{sobject}/describe")
        return self._describes[sobject]

    def limits(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get_json("/limits")
        return result

    def deleted(self, sobject: str, start: str, end: str) -> dict[str, Any]:
        """The getDeleted resource (delete log, last 15 days)."""
        result: dict[str, Any] = self.get_json(
            f"/sobjects/{sobject}/deleted/", params={"start": start, "end": end}
        )
        return result

    # ------------------------------------------------------------------ queries
    def _query_url_length(self, soql: str, include_deleted: bool) -> int:
        endpoint = "/queryAll" if include_deleted else "/query"
        url = httpx.URL(self.base + endpoint, params={"q": soql})
        return len(url.raw_path)

    def query_pages(
        self, soql: str, include_deleted: bool = False
    ) -> Iterator[list[dict[str, Any]]]:
        """Run one SOQL query and yield its pages (``attributes`` dropped) until ``done``."""
        if self._query_url_length(soql, include_deleted) > self.settings.max_url_length:
            raise QueryTooLong(soql[:60])
        endpoint = "/queryAll" if include_deleted else "/query"
        options = {"Sforce-Query-Options": f"batchSize={self.settings.page_size}"}
        body = self.get_json_with(endpoint, {"q": soql}, options)
        while True:
            records = body.get("records", [])
            for record in records:
                record.pop("attributes", None)
            if records:
                yield records
            next_url = body.get("nextRecordsUrl")
            if body.get("done", True) or not next_url:
                return
            body = self.get_json_with(next_url, None, options)

    def get_json_with(
        self, path: str, params: dict[str, str] | None, headers: dict[str, str]
    ) -> Any:
        return _json(self.request("GET", path, params=params, headers=headers))

    def query_records(
        self,
        sobject: str,
        fields: list[str],
        where: str,
        include_deleted: bool = False,
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of rows ordered by (SystemModstamp, Id), splitting the SELECT if too long.

        A split query runs each field group to completion and merges by ``Id``; a row that
        is missing from one group changed while we read (its SystemModstamp moved past the
        window), so it is left for the next run rather than loaded half-filled.
        """
        order = " ORDER BY SystemModstamp, Id"
        groups = self._field_groups(sobject, fields, where, order, include_deleted)
        if len(groups) == 1:
            soql = f"SELECT {', '.join(groups[0])} FROM {sobject} WHERE {where}{order}"
            yield from self.query_pages(soql, include_deleted)
            return
        log.info(
            "%s: %d fields split into %d queries to stay under the URL limit",
            sobject,
            len(fields),
            len(groups),
        )
        merged: dict[str, dict[str, Any]] = {}
        seen: dict[str, int] = {}
        for group in groups:
            soql = f"SELECT {', '.join(group)} FROM {sobject} WHERE {where}{order}"
            for page in self.query_pages(soql, include_deleted):
                for row in page:
                    merged.setdefault(row["Id"], {}).update(row)
                    seen[row["Id"]] = seen.get(row["Id"], 0) + 1
        complete = [merged[i] for i in merged if seen[i] == len(groups)]
        # Not loaded now, yet they exist: a comparison of ids must not take them for deleted.
        self.unsettled_ids.update(i for i in merged if seen[i] != len(groups))
        complete.sort(key=lambda r: (r.get("SystemModstamp") or "", r["Id"]))
        size = self.settings.page_size
        for start in range(0, len(complete), size):
            yield complete[start : start + size]

    # ------------------------------------------------------------------ Bulk API 2.0
    def record_count(self, sobject: str) -> int | None:
        """Approximate record count (the Record Count resource), to choose REST or Bulk."""
        body = self.get_json("/limits/recordCount", params={"sObjects": sobject})
        for entry in body.get("sObjects", []):
            if entry.get("name") == sobject:
                return int(entry.get("count", 0))
        return None

    def bulk_job(
        self,
        soql: str,
        include_deleted: bool = False,
        meanwhile: Callable[[], None] | None = None,
    ) -> str:
        """Create a query job and poll it (with backoff) until JobComplete; returns its id.

        The first poll is at once and the next ones soon after, growing by half each time:
        a small job is often done within a second, and a fixed first wait of seconds was a
        large share of a whole load; each poll is an API request, hence the growth.

        ``meanwhile`` runs once, in the first wait between polls (the wait is shortened by
        the time it took, so the polls keep their schedule): work the caller needs before
        the results, done while Salesforce runs the job instead of before or after it. It
        does not run when the job is complete at the first poll.

        Raises BulkQueryRejected when Bulk refuses the query (e.g. compound fields) or the
        job fails; the job is aborted and deleted so nothing is left running in the org.
        """
        body = {
            "operation": "queryAll" if include_deleted else "query",
            "query": soql,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        }
        try:
            job = self.request("POST", "/jobs/query", json_body=body).json()
        except SalesforceApiError as err:
            if err.status == 400:
                raise BulkQueryRejected(str(err)) from None
            raise
        job_id = str(job["id"])
        done = False
        try:
            waited, attempt = 0.0, 0
            while True:
                info = self.get_json(f"/jobs/query/{job_id}")
                state = info.get("state")
                if state == "JobComplete":
                    done = True
                    return job_id
                if state in ("Failed", "Aborted"):
                    raise BulkQueryRejected(
                        f"Bulk query job {state}: {info.get('errorMessage', 'no reason given')}"
                    )
                attempt += 1
                delay = min(
                    self.settings.bulk_poll_seconds * _POLL_GROWTH ** (attempt - 1),
                    self.settings.backoff_max_seconds,
                )
                waited += delay
                if waited > self.settings.bulk_timeout_seconds:
                    raise TransientSourceError(
                        f"Bulk query job still {state} after {waited:.0f}s; the org is busy, "
                        "the run can be retried later (or raise 'bulk_timeout_seconds')"
                    )
                if meanwhile is not None:
                    began = time.monotonic()
                    meanwhile()
                    meanwhile = None
                    delay = max(0.0, delay - (time.monotonic() - began))
                pause(delay, self._sleep, self._load)
        finally:
            if not done:
                self._discard_job(job_id, abort=True)

    def bulk_pages(self, job_id: str, types: dict[str, str]) -> Iterator[pa.Table]:
        """Result sets of a completed job as tables (``parse_bulk_csv``), following
        Sforce-Locator until the literal "null"; the job is deleted afterwards, whether the
        read finished or not."""
        locator: str | None = None
        try:
            while True:
                params = {"maxRecords": str(self.settings.bulk_page_records)}
                if locator:
                    params["locator"] = locator
                response = self.request(
                    "GET",
                    f"/jobs/query/{job_id}/results",
                    params=params,
                    headers={"Accept": "text/csv"},
                )
                table = parse_bulk_csv(response.content, types)
                if table.num_rows:
                    yield table
                locator = response.headers.get("Sforce-Locator")
                if not locator or locator == "null":
                    return
        finally:
            self._discard_job(job_id, abort=False)

    def _discard_job(self, job_id: str, abort: bool) -> None:
        """Best effort: a cleanup failure is logged, never hides the original outcome."""
        try:
            if abort:
                self.request(
                    "PATCH", f"/jobs/query/{job_id}", json_body={"state": "Aborted"}, cleanup=True
                )
            self.request("DELETE", f"/jobs/query/{job_id}", cleanup=True)
        except Exception as err:  # cleanup must never mask the real outcome
            log.warning("could not clean up Bulk job %s: %s", job_id, type(err).__name__)

    def _field_groups(
        self, sobject: str, fields: list[str], where: str, order: str, include_deleted: bool
    ) -> list[list[str]]:
        """Greedy split of ``fields`` into SELECT lists whose URLs fit the limit."""
        keys = [k for k in _KEY_FIELDS if k in fields or k == "Id"]
        rest = [f for f in fields if f not in keys]

        def fits(group: list[str]) -> bool:
            soql = f"SELECT {', '.join(group)} FROM {sobject} WHERE {where}{order}"
            return self._query_url_length(soql, include_deleted) <= self.settings.max_url_length

        groups: list[list[str]] = []
        current = list(keys)
        for name in rest:
            if fits([*current, name]):
                current.append(name)
                continue
            if current == keys:
                raise SalesforceApiError(
                    414,
                    "URI_TOO_LONG",
                    f"field {name} alone makes the query for {sobject} too long",
                    "Raise 'max_url_length' in the member's salesforce settings.",
                )
            groups.append(current)
            current = [*keys, name]
        groups.append(current)
        return groups


def parse_bulk_csv(data: bytes, types: dict[str, str]) -> pa.Table:
    """One Bulk CSV result set typed like the REST API's JSON, so both paths load identical
    rows (``columns.typed_bulk_table``): quoted fields may hold newlines, commas and doubled
    quotes; Bulk writes nulls as empty fields (Salesforce does not tell null from empty
    text)."""
    return typed_bulk_table(read_bulk_csv(data), types)


def _json(response: httpx.Response) -> Any:
    """A query page's body: orjson reads a 2,000-record page in about half the time of the
    json module; anything it refuses (NaN, integers past 64 bits) is read by json, as
    before."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.json()


def _retry_after_seconds(value: str | None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _short(path: str) -> str:
    return path.split("?")[0][:80]


def _advice(code: str, status: int, sobject: str | None = None) -> str:
    what = sobject or "the object"
    if code == "INVALID_QUERY_LOCATOR":
        return (
            f"Salesforce closed the query cursor reading {what} before the load read all its "
            "pages: it keeps at most 10 open cursors per user, shared with every other "
            "integration signed in as the same user (this load holds up to one per object it "
            "reads), and closes one left idle for 15 minutes. Give the hub its own integration "
            "user, or schedule it away from the other integrations; the next run reads again "
            "from the last completed load, so nothing is lost."
        )
    if code == "QUERY_TIMEOUT":
        return (
            f"Salesforce stopped the query on {what} for running too long (a large object or "
            "a busy org). The next run reads again from the last completed load; if it keeps "
            "happening on full reads, lower 'bulk_threshold' so they go through Bulk API 2.0, "
            "or ask Salesforce support for a custom index on SystemModstamp."
        )
    if code == "INVALID_FIELD":
        return (
            "The integration user cannot read a field the query names: grant it field-level "
            "security in Salesforce or remove it from the member's mapping."
        )
    if code in ("INVALID_TYPE", "NOT_FOUND"):
        return (
            "The object is not visible to the integration user: check the package is "
            "installed and the user's permission set grants read access."
        )
    if code in ("API_DISABLED_FOR_ORG", "API_CURRENTLY_DISABLED"):
        return "API access is off for this org or user: enable 'API Enabled' for the user."
    if status == 403:
        return "The integration user lacks a permission: check its permission sets."
    return "Check the member's salesforce settings; the request cannot succeed as sent."
