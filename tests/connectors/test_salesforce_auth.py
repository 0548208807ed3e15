"""The Salesforce login answer names the instance the access token is sent to."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import httpx
import pytest

from connectors.salesforce_npsp.auth import SalesforceAuthError, fetch_token
from connectors.salesforce_npsp.settings import ClientCredentials, SalesforceSettings


@pytest.fixture
def login_server() -> Iterator[tuple[str, dict]]:
    """A loopback token endpoint answering with whatever ``answer`` holds."""
    answer: dict = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", answer
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    "instance",
    [
        "http://evil.example.org",  # the token in clear to any host
        "https://user:pw@evil.example.org",
        "https://x.my.salesforce.com/?access_token=1",
        "ftp://x.example.org",
        12,
    ],
)
def test_an_unsafe_instance_url_in_the_login_answer_is_refused(
    login_server: tuple[str, dict], instance: object
) -> None:
    url, answer = login_server
    answer.update(access_token="tok", instance_url=instance)
    settings = SalesforceSettings(login_url=url, client_id="app")
    with httpx.Client() as http, pytest.raises(SalesforceAuthError, match="instance URL"):
        fetch_token(http, settings, ClientCredentials("secret"))


def test_a_safe_instance_url_is_taken(login_server: tuple[str, dict]) -> None:
    url, answer = login_server
    answer.update(access_token="tok", instance_url="https://acme.my.salesforce.com/")
    settings = SalesforceSettings(login_url=url, client_id="app")
    with httpx.Client() as http:
        token = fetch_token(http, settings, ClientCredentials("secret"))
    assert token.instance_url == "https://acme.my.salesforce.com"
