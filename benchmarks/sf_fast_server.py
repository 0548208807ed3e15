"""A minimal, fast Salesforce-shaped server for the connector speed benchmark.

Why it exists: the project's sandbox (``sandboxes/salesforce_npsp.py``) evaluates
SOQL and renders every page in Python per request, on the same two cores as the client, so
it hides the connector's own overhead. This server answers from bytes rendered once, before
the clock starts: per request it only splits the request line, looks the path up in a dict
and writes the stored response. Nothing else.

What it serves (enough for a full load of one object, REST or Bulk API 2.0):

- ``POST /services/oauth2/token``: a token whose ``instance_url`` is this server;
- ``GET .../sobjects``, ``.../sobjects/<object>/describe``, ``.../limits/recordCount``;
- ``GET .../query`` and ``.../queryAll`` (whatever ``q`` says): the first page of the
  pre-rendered query, and each ``nextRecordsUrl`` page after it;
- ``POST .../jobs/query``: a job in ``UploadComplete``; ``GET .../jobs/query/<id>``:
  ``InProgress`` until ``job_seconds`` after the job was created, then ``JobComplete``
  (a real org always needs some time, so a client's polling schedule shows);
- ``GET .../jobs/query/<id>/results[?locator=...]``: the pre-rendered CSV result set for
  that locator (``maxRecords`` is ignored: result sets were cut at render time), with its
  ``Sforce-Locator`` and ``Sforce-NumberOfRecords`` headers;
- ``PATCH``/``DELETE .../jobs/query/<id>``: accepted.

The pages themselves come from the sandbox (``prerender``), so the data, the JSON and the CSV
are exactly what the sandbox (and so the connector's tests) produce.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import httpx

API = "/services/data/v62.0"
OBJECT = "pmdm__ServiceDelivery__c"
JOB_ID = "750000000000001AAA"


@dataclass
class Rendered:
    """Response bodies by path (and, for Bulk results, by locator), rendered once."""

    sobjects: bytes = b""
    describe: bytes = b""
    record_count: bytes = b""
    query_pages: dict[str, bytes] = field(default_factory=dict)  # path -> JSON page
    first_query_page: str = ""
    result_sets: dict[str, tuple[bytes, str, int]] = field(default_factory=dict)
    fields: list[str] = field(default_factory=list)
    records: int = 0


def prerender(records: int, page_size: int = 2000, result_set: int = 50_000) -> Rendered:
    """Generate ``records`` service deliveries in the sandbox and record its answers."""
    from connectors.salesforce_npsp.client import selectable_fields
    from sandboxes.salesforce_npsp import SalesforceSandbox, SandboxSizes

    sizes = SandboxSizes(
        contacts=min(2_000, records), engagements=min(4_000, records), deliveries=records
    )
    out = Rendered(records=records)
    with (
        SalesforceSandbox(sizes=sizes, api_max=10_000_000, page_size=page_size) as sf,
        httpx.Client(base_url=sf.url, timeout=600) as http,
    ):
        token = http.post(
            "/services/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": sf.client_id,
                "client_secret": sf.client_secret,
            },
        ).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        out.sobjects = http.get(f"{API}/sobjects").content
        describe = http.get(f"{API}/sobjects/{OBJECT}/describe")
        out.describe = describe.content
        out.fields = list(selectable_fields(describe.json()))
        counted = http.get(f"{API}/limits/recordCount", params={"sObjects": OBJECT})
        out.record_count = counted.content
        soql = f"SELECT {', '.join(out.fields)} FROM {OBJECT}"
        response = http.get(f"{API}/queryAll", params={"q": soql + " ORDER BY SystemModstamp, Id"})
        path = out.first_query_page = f"{API}/query/first"
        while True:
            out.query_pages[path] = response.content
            body = response.json()
            if body["done"]:
                break
            path = body["nextRecordsUrl"]
            response = http.get(path)
        job = http.post(f"{API}/jobs/query", json={"operation": "queryAll", "query": soql})
        job_id = job.json()["id"]
        while http.get(f"{API}/jobs/query/{job_id}").json()["state"] != "JobComplete":
            time.sleep(0.01)
        locator = ""
        while True:
            params = {"maxRecords": str(result_set)}
            if locator:
                params["locator"] = locator
            answer = http.get(f"{API}/jobs/query/{job_id}/results", params=params)
            next_locator = answer.headers["Sforce-Locator"]
            count = int(answer.headers["Sforce-NumberOfRecords"])
            out.result_sets[locator] = (answer.content, next_locator, count)
            if next_locator == "null":
                break
            locator = next_locator
        http.delete(f"{API}/jobs/query/{job_id}")
    return out


def _response(
    body: bytes, status: str = "200 OK", kind: str = "application/json", **headers: str
) -> bytes:
    lines = [
        f"HTTP/1.1 {status}",
        f"Content-Type: {kind}",
        f"Content-Length: {len(body)}",
        "Sforce-Limit-Info: api-usage=1/10000000",
        *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class FastSalesforce:
    """Serve a ``Rendered`` org on loopback from an asyncio loop in a daemon thread."""

    def __init__(self, rendered: Rendered, job_seconds: float = 0.3) -> None:
        self.rendered = rendered
        self.job_seconds = job_seconds
        self.url = ""
        self._job_created = 0.0
        self._static: dict[str, bytes] = {}
        self._results: dict[str, bytes] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _render_responses(self) -> None:
        r = self.rendered
        token = json.dumps(
            {
                "access_token": "00Dfast!session",
                "instance_url": self.url,
                "token_type": "Bearer",
                "issued_at": "1700000000000",
            }
        ).encode()
        self._static = {
            "/services/oauth2/token": _response(token),
            f"{API}/sobjects": _response(r.sobjects),
            f"{API}/sobjects/{OBJECT}/describe": _response(r.describe),
            f"{API}/limits/recordCount": _response(r.record_count),
        }
        for path, page in r.query_pages.items():
            self._static[path] = _response(page)
        first = self._static[r.first_query_page]
        self._static[f"{API}/query"] = self._static[f"{API}/queryAll"] = first
        info = {
            "id": JOB_ID,
            "operation": "queryAll",
            "object": OBJECT,
            "contentType": "CSV",
            "apiVersion": 62.0,
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        }
        self._created = _response(json.dumps({**info, "state": "UploadComplete"}).encode())
        self._running = _response(json.dumps({**info, "state": "InProgress"}).encode())
        self._complete = _response(
            json.dumps(
                {**info, "state": "JobComplete", "numberRecordsProcessed": r.records}
            ).encode()
        )
        self._deleted = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
        self._missing = _response(
            b'[{"errorCode":"NOT_FOUND","message":"no such resource"}]', "404 Not Found"
        )
        for locator, (csv, next_locator, count) in r.result_sets.items():
            self._results[locator] = _response(
                csv,
                kind="text/csv",
                Sforce_Locator=next_locator,
                Sforce_NumberOfRecords=str(count),
            )

    def _answer(self, method: str, target: str) -> bytes:
        path, _, query = target.partition("?")
        found = self._static.get(path)
        if found is not None:
            return found
        if path.startswith(f"{API}/jobs/query"):
            if method == "POST":
                self._job_created = time.monotonic()
                return self._created
            if method == "DELETE":
                return self._deleted
            if path.endswith("/results"):
                locator = parse_qs(query).get("locator", [""])[0]
                return self._results.get(locator, self._missing)
            if time.monotonic() - self._job_created < self.job_seconds:
                return self._running
            return self._complete
        return self._missing

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, _, headers = head.partition(b"\r\n")
                method, target, _ = request_line.decode("latin-1").split(" ", 2)
                length = 0
                for line in headers.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                writer.write(self._answer(method, target))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if not writer.transport.is_closing() and not asyncio.get_running_loop().is_closed():
                writer.close()

    def start(self) -> FastSalesforce:
        ready = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            server = loop.run_until_complete(
                asyncio.start_server(self._serve, "127.0.0.1", 0, limit=1 << 20)
            )
            port = server.sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}"
            self._render_responses()
            ready.set()
            loop.run_forever()
            server.close()
            loop.run_until_complete(server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(30)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FastSalesforce:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
