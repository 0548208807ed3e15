"""`hub forget` and `hub remove-member`, run as an operator runs them, on real files.

The network is test_hub_run's (two spreadsheet members, A1..A3 of alpha are B1..B3 of beta).
Every check reads the warehouse itself: a forgotten person must be in no layer, must stay out
after the member's file (which still lists them) is loaded again, and the log must name no one.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from tests.pipelines.hub_cli import hub, hub_env
from tests.pipelines.test_hub_run import _write_network
from transforms.erasure import subject_digest

pytestmark = pytest.mark.slow


def _rows(home: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _text_cells(home: Path, schemas: tuple[str, ...]) -> list[str]:
    """Every text value of every table in ``schemas`` (the whole layer, not chosen columns)."""
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        found: list[str] = []
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            f"WHERE table_schema IN ({', '.join('?' for _ in schemas)})",
            list(schemas),
        ).fetchall()
        for schema, table in tables:
            for row in con.execute(f'SELECT * FROM {schema}."{table}"').fetchall():
                found += [str(v) for v in row if v is not None]
        return found
    finally:
        con.close()


def test_forget_erases_a_person_everywhere_and_keeps_them_out(tmp_path: Path) -> None:
    members = _write_network(tmp_path)
    home = tmp_path / "hub"
    env = hub_env(tmp_path, members, USER="tester")
    assert hub(["run"], env).returncode == 0
    # A4 (Dev Patel) is alpha's only: engaged, achieved an outcome, linked.
    assert _rows(home, "SELECT COUNT(*) FROM raw_alpha.spreadsheet__person WHERE source_id='A4'")
    assert _rows(home, "SELECT 1 FROM hub.person_link WHERE org_id='alpha' AND source_id='A4'")
    before_activity = _rows(home, "SELECT COUNT(*) FROM hub.activity WHERE org_id='alpha'")[0][0]
    key = "SELECT person_key FROM hub.person_link WHERE org_id=? AND source_id=?"
    assert _rows(home, key, ["alpha", "A1"]) == _rows(home, key, ["beta", "B1"])  # one person

    refused = hub(["forget", "alpha", "A4"], env)  # no terminal to confirm on: refused
    assert refused.returncode == 2 and "--yes" in refused.stdout
    typo = hub(["forget", "alpha", "A44", "--yes"], env)
    assert typo.returncode == 1 and "Nothing was erased" in typo.stdout
    assert _rows(home, "SELECT COUNT(*) FROM hub.erasure_log")[0][0] == 0

    done = hub(["forget", "alpha", "A4", "--yes", "--by", "dpo"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "erased one person of alpha" in done.stdout and "A4" not in done.stdout
    # A4's engagement counted in a quarter: the operator is told how to revise it.
    assert "Quarters whose figures counted them: 2025-Q1" in done.stdout
    assert "The next release revises those already published" in " ".join(done.stdout.split())

    def assert_gone() -> None:
        cells = _text_cells(home, ("raw_alpha", "raw_alpha_staging", "canonical", "quarantine"))
        for value in ("A4", "Patel", "Dev", "1983-04-04"):
            assert value not in cells, value
        assert not _rows(
            home, "SELECT 1 FROM hub.person_link WHERE org_id='alpha' AND source_id='A4'"
        )

    assert_gone()
    log = _rows(
        home, "SELECT action, org_id, subject, requested_by, rows_erased FROM hub.erasure_log"
    )
    assert len(log) == 1
    action, org, subject, by, counts = log[0]
    assert (action, org, by) == ("forget", "alpha", "dpo")
    assert subject == subject_digest("alpha", "A4") and "A4" not in counts
    assert "raw_alpha.spreadsheet__person" in counts and "canonical.person" in counts

    # A1 is linked to beta's B1: forgetting A1 must leave B1 a person of its own.
    assert hub(["forget", "alpha", "A1", "--yes", "--by", "dpo"], env).returncode == 0

    # The member's file still lists A4: the next run loads it and erases it again.
    again = hub(["run"], env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_gone()
    after_activity = _rows(home, "SELECT COUNT(*) FROM hub.activity WHERE org_id='alpha'")[0][0]
    assert after_activity < before_activity  # the release is counted without them
    # ... published quarters included: the quarter that counted A4 is revised at once.
    (plan,) = _rows(home, "SELECT plan FROM hub.release_meta")[0]
    assert "2025-Q1" in json.loads(plan)["revised"]
    revisions = _rows(home, "SELECT DISTINCT period, revised_in FROM hub.erasure_revision")
    assert revisions == [("2025-Q1", json.loads(plan)["version"])]
    (b1_key,) = _rows(home, key, ["beta", "B1"])[0]
    assert _rows(
        home, "SELECT org_id, source_id FROM hub.person_link WHERE person_key=?", [b1_key]
    ) == [("beta", "B1")]
    orgs = _rows(home, "SELECT DISTINCT org_id FROM hub.activity WHERE person_key=?", [b1_key])
    assert orgs == [("beta",)]
    # The placeholder left for the linker is gone after the run that re-linked.
    assert not _rows(home, "SELECT 1 FROM hub.person_link WHERE source_id LIKE 'erased:%'")
    listed = hub(["erasures"], env)
    assert listed.returncode == 0 and "forget" in listed.stdout and "dpo" in listed.stdout
