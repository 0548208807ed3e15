"""The receiver as its own process (``python -m events.receiver``): an event answered 2xx
survives a SIGKILL straight after the answer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from events.inbox import open_inbox
from tests.events.receiver_kit import cdc_body, free_port, new_secret, signed_headers, write_member

ROOT = Path(__file__).resolve().parents[2]


def test_an_answered_event_survives_sigkill(tmp_path: Path) -> None:
    secret = new_secret()
    write_member(
        tmp_path / "members",
        "kill_trust",
        events={"webhook_secret": {"env": "HUB_KILL_TRUST_WEBHOOK_SECRET"}},
    )
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HUB_HOME": str(tmp_path / "home"),
        "HUB_MEMBERS_DIR": str(tmp_path / "members"),
        "HUB_KILL_TRUST_WEBHOOK_SECRET": secret,
    }
    env.pop("HUB_EVENTS_INBOX", None)
    child = subprocess.Popen(
        [sys.executable, "-m", "events.receiver", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        with httpx.Client(base_url=url, timeout=5) as client:
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
                assert time.monotonic() < deadline, "the receiver did not start"
                time.sleep(0.05)
            ids = []
            for i in range(5):
                body = cdc_body(ids=[f"003A{i:014d}"])
                answer = client.post(
                    "/members/kill_trust/webhook",
                    content=body,
                    headers=signed_headers(secret, body, f"k{i}"),
                )
                assert answer.status_code == 200, answer.text
                ids.append(f"k{i}")
            os.kill(child.pid, signal.SIGKILL)  # at once after the last 2xx
        child.wait(10)
        assert child.returncode == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        if child.stderr:
            child.stderr.close()
    inbox = open_inbox(tmp_path / "home" / "events" / "inbox.sqlite3")
    assert [e.event_id for e in inbox.received_after(0)] == ids
