"""A CRM that answers one byte at a time cannot hold a run (issue #18, part 4).

A loopback server sends a valid status line and headers, then trickles the body one byte
every 0.3 s: each read succeeds well within the read timeout, so only an overall deadline
per request stops it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from connectors.civicrm.client import CiviCRMClient, CiviCRMTransientError
from connectors.civicrm.settings import CiviCRMSettings
from connectors.deadline import deadline, deadline_transport


@pytest.fixture
def drip() -> Iterator[str]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def answer(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            body = b'{"values": [], "count": 0}' * 20
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
            )
            for byte in body:
                if stop.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.3)

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        server.close()


def test_the_deadline_cuts_a_trickling_answer(drip: str) -> None:
    with httpx.Client(timeout=5.0, transport=deadline_transport()) as client:
        started = time.monotonic()
        with deadline(1.5), pytest.raises(httpx.ReadTimeout):
            client.get(drip)
        assert time.monotonic() - started < 3
        # Without a deadline block nothing changes for other requests.
        with deadline(None):
            pass


def test_civicrm_client_gives_up_on_a_trickling_server(drip: str) -> None:
    settings = CiviCRMSettings(
        site_url=drip, read_timeout=10, request_deadline=1.0, max_retries=1, backoff_seconds=0
    )
    started = time.monotonic()
    with CiviCRMClient(settings, "k") as client, pytest.raises(CiviCRMTransientError):
        client.call("Contact", "get", {"limit": 1})
    assert time.monotonic() - started < 5  # two attempts of one second, not 10 s reads
