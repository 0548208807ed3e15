"""Smoke form of the CiviCRM fast-server benchmark: both contenders read the same rows.

A tiny site (30 contacts) on the benchmark's own server, in a thread: the server's pages
are APIv4 envelopes, it refuses a filter it cannot answer honestly, and the connector and
the bare loop load every row, ActivityContact through the connector's joined child pager.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.civicrm_fast_load import _run_bare, _run_hub
from benchmarks.fast_civicrm import Store, generate, serve


@pytest.fixture(scope="module")
def site() -> Iterator[tuple[str, Store]]:
    store = Store(generate(30))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    loop = asyncio.new_event_loop()
    task = loop.create_task(serve(store, port))

    def run() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task)
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    for _ in range(100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        threading.Event().wait(0.05)
    yield f"http://127.0.0.1:{port}", store
    loop.call_soon_threadsafe(task.cancel)
    thread.join(5)


def test_pages_are_apiv4_envelopes_and_unknown_filters_are_refused(
    site: tuple[str, Store],
) -> None:
    _, store = site
    answer = json.loads(
        store.answer(
            "Contact",
            {"select": ["id", "first_name"], "where": [["id", ">", 3]], "limit": 2},
        )
    )
    assert answer["count"] == 2 and [r["id"] for r in answer["values"]] == [4, 5]
    assert set(answer["values"][0]) == {"id", "first_name"}
    with pytest.raises(ValueError, match="does not hold"):
        store.answer("Contact", {"where": [["first_name", "=", "Nobody"]]})


def test_both_contenders_read_every_row(site: tuple[str, Store], tmp_path: Path) -> None:
    """ActivityContact: the child pager's joined fields are served, and every role read."""
    url, store = site
    expected = len(store.tables["ActivityContact"])
    (tmp_path / "hub").mkdir()
    (tmp_path / "bare").mkdir()
    assert _run_hub(url, "activity_contact", 7, tmp_path / "hub")["rows"] == expected
    assert _run_bare(url, "activity_contact", 7, tmp_path / "bare")["rows"] == expected
