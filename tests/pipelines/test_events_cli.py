"""`hub events`: what a member sees of its events, from a real inbox."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from events.inbox import Change, InboundEvent, open_inbox
from pipelines.cli import app, console

IDS = [f"0035g0000000{n:03d}AAA" for n in range(3)]


def _hub(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_hub_events_tells_each_member_what_became_of_its_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "hub"))
    monkeypatch.setenv("COLUMNS", "250")
    # The console is made once, at import: another test may have fixed its width first.
    monkeypatch.setattr(console, "width", 250)
    monkeypatch.delenv("HUB_EVENTS_INBOX", raising=False)
    assert "No events received yet" in _hub("events")
    assert not (tmp_path / "hub" / "events").exists()  # looking creates no inbox

    inbox = open_inbox(tmp_path / "hub" / "events" / "inbox.sqlite3")
    burst = [
        InboundEvent(
            "acme", f"a{n}", "salesforce_cdc", (Change("Contact", "update", (IDS[n % 3],)),)
        )
        for n in range(100)
    ]
    inbox.accept_many(burst)
    seqs = [e.seq for e in inbox.received_after(0)]
    inbox.mark_batched(seqs, "acme:events:1-100")
    inbox.mark_batch("acme:events:1-100", "succeeded", run_id="0a1b2c3d-run")
    inbox.note_batch("acme:events:1-100", "3 record(s) read by id (3 Contact)")
    inbox.accept(InboundEvent("acme", "late", "outbound_message", (Change("Contact", "gap"),)))
    inbox.accept(InboundEvent("bridge", "b1", "standard_webhook", (Change(None),)))
    bridge = [e.seq for e in inbox.recent("bridge")]
    inbox.mark_batched(bridge, "bridge:events:102-102")
    inbox.mark_batch(
        "bridge:events:102-102", "failed", run_id="9f8e7d6c-run", detail="bridge: refused"
    )
    inbox.reject("acme", "forged-1", 401, "signature does not match the member's secret")

    out = _hub("events")
    assert "Events for acme" in out and "Events for bridge" in out
    acme = out[out.index("Events for acme") : out.index("Events for bridge")]
    assert "Contact update: 3 records" in acme  # a hundred events, one line, ids counted
    assert "│ 100 " in acme and "run 0a1b2c3d succeeded" in acme  # the whole batch, past --limit
    assert "3 record(s) read by id" in acme
    assert "Contact gap (all reloaded)" in acme and "received; a load is requested" in acme
    assert "401" in acme and "signature does not match" in acme and "forged-1" in acme
    assert "run 9f8e7d6c failed" in out and "bridge: refused" in out
    assert not any(record_id in out for record_id in IDS)  # never the records themselves

    one = _hub("events", "bridge", "--limit", "5")
    assert "Events for bridge" in one and "acme" not in one
    assert "No events for nobody" in _hub("events", "nobody")
