"""Shared fixtures: every test works in its own temporary folder and warehouse file."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
POSTGRES_ADMIN_DSN = os.environ.get(
    "HUB_TEST_POSTGRES", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)


@pytest.fixture()
def postgres_dsn() -> Iterator[str]:
    """A brand-new PostgreSQL database for one test, dropped afterwards.

    The real server is part of the test environment (.ci/run starts it). Outside CI a
    missing server skips the test with the reason; in CI it fails, so the PostgreSQL path can
    never go untested unnoticed.
    """
    import psycopg

    try:
        admin = psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(
            f"no PostgreSQL server at {POSTGRES_ADMIN_DSN!r} ({err}); set HUB_TEST_POSTGRES"
        )
    name = f"hub_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            params = dict(p.split("=", 1) for p in POSTGRES_ADMIN_DSN.split())
            params["dbname"] = name
            yield " ".join(f"{k}={v}" for k, v in params.items())
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(autouse=True)
def _forget_closed_dagster_instances() -> Iterator[None]:
    """Leave no closed Dagster instance behind as the current definitions-state store.

    ``with DagsterInstance(...)`` (``dg.instance_for_test()`` too) makes the instance's state
    storage the current one for definition loading (a context variable), and Dagster 1.13
    never undoes that on exit: the undo runs only when the garbage collector finalises the
    instance, at any later moment, and then restores whatever was current before it, often
    an earlier test's deleted instance. A later test loading the definitions then opens a
    deleted SQLite file ("unable to open database file"), depending on test order. So: collect
    now, while the test's instances are unreachable, then clear the variable.
    """
    yield
    import gc

    from dagster._core.storage.defs_state.base import _current_storage

    gc.collect()
    _current_storage.set(None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the slow end-to-end tests first, so that the xdist workers end together rather
    than one finishing a long test alone after the other has run out of work.

    `make test` distributes whole files (``--dist loadfile``: module fixtures such as the
    demo's run once, and its fixed sandbox ports are never bound twice); a file is handed out
    in the order its first test appears here, so the files with slow tests go first.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
