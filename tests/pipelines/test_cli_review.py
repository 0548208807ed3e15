"""`hub review`: a person reads the masked queue, decides, and the next linkage run obeys.

The warehouse is a real DuckDB file linked by the real linkage run (the network of
``tests/transforms/test_dedup_review.py``, whose two pairs the bundled model is unsure
about). The interactive session runs in a fresh process with its answers on stdin, as a
reviewer at a terminal would type them.
"""

from __future__ import annotations

import getpass
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from tests.pipelines.hub_cli import ROOT, hub_env
from tests.transforms.test_dedup_review import (
    ESME_IDS,
    FULL_VALUES,
    RUTH,
    RUTH_IDS,
    add_people,
    linked_network,
    person_keys,
    queued,
)
from transforms.linkage import link_people
from transforms.warehouse import DuckDBWarehouse


def _warehouse(tmp_path: Path) -> DuckDBWarehouse:
    """Where `hub` looks by default (HUB_HOME/warehouse.duckdb, see hub_env)."""
    return DuckDBWarehouse(tmp_path / "hub" / "warehouse.duckdb")


def _hub(tmp_path: Path, args: list[str], answers: str = "") -> subprocess.CompletedProcess[str]:
    """`hub <args>` in a fresh process, with ``answers`` typed on stdin."""
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        env=hub_env(tmp_path, tmp_path / "members"),
        input=answers,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def _invoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], answers: str = ""
) -> tuple[int, str]:
    """`hub <args>` in this process (quicker), same environment."""
    for name, value in hub_env(tmp_path, tmp_path / "members").items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HUB_WAREHOUSE", raising=False)
    result = CliRunner().invoke(app, args, input=answers)
    return result.exit_code, result.output


def _decisions(warehouse: DuckDBWarehouse) -> list[tuple]:
    with warehouse.connect() as session:
        return session.fetchall(
            "SELECT org_id_l, source_id_l, org_id_r, source_id_r, decision, decided_by "
            "FROM hub.link_decision ORDER BY source_id_l"
        )


def _leaks(output: str) -> list[str]:
    return [value for value in FULL_VALUES if value in output]


def test_a_reviewer_accepts_and_rejects_and_the_next_run_obeys(tmp_path: Path) -> None:
    warehouse = linked_network(_warehouse(tmp_path))

    listed = _hub(tmp_path, ["review", "--list"])
    assert listed.returncode == 0, listed.stderr
    out = listed.stdout
    assert "2 pair(s) waiting for review" in out
    rows = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in out.splitlines()
        if line.startswith(("│ 1 ", "│ 2 "))
    ]
    assert [row[:1] + row[2:] for row in rows] == [
        ["1", "north_aid/N-107", "south_care/S-208",
         "same", "same", "missing", "missing", "same", "different"],
        ["2", "north_aid/N-111", "south_care/S-212",
         "same", "same", "missing", "same", "missing", "different"],
    ]  # fmt: skip
    assert 0.95 > float(rows[0][1]) > float(rows[1][1]) >= 0.5
    assert _leaks(out) == []
    assert _decisions(warehouse) == []  # listing decides nothing

    session = _hub(tmp_path, ["review"], answers="a\nreject\n")
    assert session.returncode == 0, session.stderr
    out = session.stdout
    assert "Pair 1 of 2: match probability 0.8" in out and "Pair 2 of 2" in out
    assert "model m_" in out
    # Side by side: ids and consent in full, personal data masked, each field's verdict.
    for shown in ("N-107", "S-208", "R•••", "O•••", "2001-••-••", "•••999", "M21 •••"):
        assert shown in out
    assert "e•••@•••.com" in out and "consent to share" in out
    assert _leaks(out) == []
    assert "1 accepted, 1 rejected, 0 skipped; 0 still waiting" in out
    user = getpass.getuser()
    assert _decisions(warehouse) == [
        (*RUTH_IDS, "accept", user),
        (*ESME_IDS, "reject", user),
    ]

    link_people(warehouse)
    keys = person_keys(warehouse)
    assert keys[RUTH_IDS[:2]] == keys[RUTH_IDS[2:]]
    assert keys[ESME_IDS[:2]] != keys[ESME_IDS[2:]]
    assert queued(warehouse) == []
    again = _hub(tmp_path, ["review"])
    assert again.returncode == 0 and "No pairs are waiting for review." in again.stdout


def test_skip_and_quit_leave_the_queue_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = linked_network(_warehouse(tmp_path))
    code, out = _invoke(tmp_path, monkeypatch, ["review", "--by", "sam"], answers="maybe\ns\nq\n")
    assert code == 0, out
    assert "'maybe' is not one of" in out  # asked again, nothing recorded
    assert "Pair 2 of 2" in out
    assert "0 accepted, 0 rejected, 1 skipped; 2 still waiting." in out
    assert _decisions(warehouse) == [] and len(queued(warehouse)) == 2
    # Input ending mid-queue (a closed terminal) stops without recording anything either.
    code, out = _invoke(tmp_path, monkeypatch, ["review", "--by", "sam"], answers="s\n")
    assert code == 1 and "1 skipped; 2 still waiting" in out
    assert _decisions(warehouse) == []


def test_one_pair_decided_without_prompting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse = linked_network(_warehouse(tmp_path))
    code, out = _invoke(
        tmp_path, monkeypatch, ["review", "--decide", "2", "REJECT", "--by", "nightly job"]
    )
    assert code == 0, out
    assert "reject recorded for north_aid/N-111 ↔ south_care/S-212 by nightly job" in out
    assert _decisions(warehouse) == [(*ESME_IDS, "reject", "nightly job")]
    assert queued(warehouse) == [RUTH_IDS]

    code, out = _invoke(tmp_path, monkeypatch, ["review", "--decide", "1", "maybe"])
    assert code == 2 and "unknown decision 'maybe': say accept or reject" in out
    code, out = _invoke(tmp_path, monkeypatch, ["review", "--decide", "2", "accept"])
    assert code == 2 and "there is no pair 2: the queue has 1" in out
    code, out = _invoke(tmp_path, monkeypatch, ["review", "--list", "--decide", "1", "accept"])
    assert code == 2 and "not both" in out
    code, out = _invoke(tmp_path, monkeypatch, ["review", "--org", "elsewhere", "--list"])
    assert code == 0 and "No pairs involving elsewhere are waiting for review." in out
    assert _decisions(warehouse) == [(*ESME_IDS, "reject", "nightly job")]  # unchanged


def test_a_warehouse_not_yet_linked_is_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = _invoke(tmp_path, monkeypatch, ["review"])
    assert code == 1 and "No warehouse at" in out and "hub run" in out
    assert not (tmp_path / "hub" / "warehouse.duckdb").exists()  # not created by asking
    add_people(_warehouse(tmp_path), RUTH)
    code, out = _invoke(tmp_path, monkeypatch, ["review", "--list"])
    assert code == 1 and "people have not been linked in this warehouse yet" in " ".join(
        out.split()
    )
