"""`hub check` for CRM members, against the local Salesforce and CiviCRM sandboxes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from connectors.civicrm.sandbox import CiviCRMSandbox
from connectors.salesforce_npsp.sandbox import SalesforceSandbox
from pipelines.cli import app


def _member(folder: Path, org: str, connector: dict, mappings: dict | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    config = {"name": org.title(), "connector": connector, "mappings": mappings or {}}
    (folder / f"{org}.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")


def _check(org: str, members: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setenv("HUB_MEMBERS_DIR", str(members))
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["check", org])
    return result.exit_code, result.output


def test_check_salesforce_member(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with SalesforceSandbox() as sf:
        _member(
            tmp_path,
            "sf_trust",
            {
                "kind": "salesforce_npsp",
                "login_url": sf.url,
                "client_id": sf.client_id,
                "client_secret": {"env": "SF_TRUST_SECRET"},
            },
            {
                "programmes": {"Housing Support": "housing"},
                "engagement_status": {"Active": "active", "Completed": "completed"},
                "outcome_status": {"Achieved": "achieved"},
            },
        )
        monkeypatch.setenv("SF_TRUST_SECRET", sf.client_secret)
        code, out = _check("sf_trust", tmp_path, monkeypatch)
        assert code == 0, out
        assert "authenticated; API version 62.0 offered" in out
        assert "pmdm__ServiceDelivery__c" in out and "API allocation" in out
        # What the mapping will produce, from the org's Program names and picklist values.
        out = " ".join(out.split())  # rich wraps long lines at the terminal width
        assert "✓ Program 'Housing Support' → housing" in out
        assert (
            "! Program 'Employment Coaching' has no mapping: its records will be quarantined; "
            "add it under mappings.programmes in members/sf_trust.yaml" in out
        )
        assert "✓ Stage 'Active' → active" in out and "! Stage 'Withdrawn' has no mapping" in out
        assert "✓ outcome status 'Achieved' → achieved" in out
        assert "! outcome status 'In progress' has no mapping" in out
        assert "✓ attendance 'Absent': not counted (absence)" in out
        assert "✓ attendance 'Present': counted" in out
        monkeypatch.setenv("SF_TRUST_SECRET", "wrong")
        code, out = _check("sf_trust", tmp_path, monkeypatch)
        assert code == 1 and "wrong" not in out
        assert "client" in out.lower()  # says the client credentials were refused


def test_check_civicrm_member(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with CiviCRMSandbox() as civi:
        _member(
            tmp_path,
            "civi_trust",
            {
                "kind": "civicrm",
                "site_url": civi.url,
                "api_key": {"env": "CIVI_TRUST_KEY"},
            },
        )
        monkeypatch.setenv("CIVI_TRUST_KEY", civi.api_key)
        code, out = _check("civi_trust", tmp_path, monkeypatch)
        assert code == 0, out
        assert "authenticated; CiviCRM 6.9.0" in out and "permission" in out
        monkeypatch.setenv("CIVI_TRUST_KEY", "not-the-key")
        code, out = _check("civi_trust", tmp_path, monkeypatch)
        assert code == 1 and "not-the-key" not in out
        assert "API key" in out


def test_crm_members_are_listed_but_not_loaded_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _member(
        tmp_path,
        "civi_trust",
        {
            "kind": "civicrm",
            "site_url": "http://127.0.0.1:9",
            "api_key": {"env": "X"},
        },
    )
    monkeypatch.setenv("HUB_MEMBERS_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    listed = CliRunner().invoke(app, ["members"])
    assert listed.exit_code == 0 and "civi_trust" in listed.output and "civicrm" in listed.output
