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
    monkeypatch.setenv("HUB_HOME", str(members / ".hub"))  # never the developer's own hub
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
                "client_secret": {"env": "HUB_SF_TRUST_SECRET"},
            },
            {
                "programmes": {"Housing Support": "housing"},
                "engagement_status": {"Active": "active", "Completed": "completed"},
                "outcome_status": {"Achieved": "achieved"},
            },
        )
        monkeypatch.setenv("HUB_SF_TRUST_SECRET", sf.client_secret)
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
        monkeypatch.setenv("HUB_SF_TRUST_SECRET", "wrong")
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
                "api_key": {"env": "HUB_CIVI_TRUST_KEY"},
                "delivery_activity_types": ["Meeting", "Advice Session", "Home Visit"],
            },
            {
                "programmes": {"housing_support": "housing"},
                "engagement_status": {"Open": "active", "Closed": "completed"},
                "outcomes": {"tenancy_sustained": "tenancy_sustained"},
                "outcome_status": {"achieved": "achieved", "progressing": "progressing"},
            },
        )
        monkeypatch.setenv("HUB_CIVI_TRUST_KEY", civi.api_key)
        civi.trash_contact(min(civi.data.tables["Contact"]))  # one trashed: proves the right
        code, out = _check("civi_trust", tmp_path, monkeypatch)
        assert code == 0, out
        assert "authenticated; CiviCRM 6.9.0" in out  # from Domain.get: APIv4 has no System.get
        assert not [r for r in civi.requests if r[0] == "System"]
        # Nothing loaded yet: the consent counts come from the member's first load.
        assert "consent: counted after the member's first load" in out
        assert "✓ permission: access deleted contacts (1 trashed contacts visible)" in out
        assert "✓ permission: view all contacts (19 contacts visible)" in out
        out = " ".join(out.split())  # rich wraps long lines at the terminal width
        # Entities read, with the custom fields the site has (Group.field).
        assert "✓ Contact: 9 fields (custom: Consent.share_data)" in out
        assert "Outcomes.outcome, Outcomes.status, Outcomes.value" in out
        # The mapping, from the site's option lists (case types, statuses, outcome options).
        assert "✓ case type 'housing_support' → housing" in out
        assert (
            "! case type 'money_advice' has no mapping: its records will be quarantined; "
            "add it under mappings.programmes in members/civi_trust.yaml" in out
        )
        assert "✓ case status 'Open' → active" in out and "! case status 'Urgent'" in out
        assert "✓ activity type 'Meeting': counted as a delivery" in out
        assert "✓ activity type 'Advice Session': counted as a delivery" in out
        assert "· 2 other activity types are not deliveries" in out
        assert "! connector.delivery_activity_types names 'Home Visit', which this site" in out
        assert "✓ activity status 'Completed': counted as a delivery" in out
        assert "✓ outcome option 'tenancy_sustained' → tenancy_sustained" in out
        assert "! outcome option 'debt_reduced' has no mapping" in out
        assert "! outcome status option 'not_achieved' has no mapping" in out
        # A permission CiviCRM enforces with its ACL is never shown as granted when the
        # answer is empty: CiviCRM hides trashed contacts rather than refusing.
        civi.revoke_permission("access deleted contacts")
        code, out = _check("civi_trust", tmp_path, monkeypatch)
        out = " ".join(out.split())
        assert "? permission: access deleted contacts (0 trashed contacts visible)" in out
        assert "not confirmed: no trashed contact is visible" in out
        # Without 'view all contacts' CiviCRM answers with no contacts: the check fails.
        civi.revoke_permission("view all contacts")
        code, out = _check("civi_trust", tmp_path, monkeypatch)
        out = " ".join(out.split())
        assert code == 1 and "? permission: view all contacts (0 contacts visible)" in out
        assert "grant it to the CiviCRM user's role" in out
        # An entity permission is refused outright, and named.
        civi.revoke_permission("access CiviContribute")
        code, out = _check("civi_trust", tmp_path, monkeypatch)
        assert code == 1 and "✗ permission: access CiviContribute" in out
        monkeypatch.setenv("HUB_CIVI_TRUST_KEY", "not-the-key")
        code, out = _check("civi_trust", tmp_path, monkeypatch)
        assert code == 1 and "not-the-key" not in out
        assert "API key" in out


def test_check_and_the_run_summary_say_which_deletions_are_held_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CiviCRM stops listing every contact (a lost permission looks like that): the load
    deletes nobody, and `hub check` and the run summary say so, with the fix."""
    import dlt

    from connectors.civicrm import civicrm_source, raw_pipeline
    from pipelines.lib.summary import render_summary
    from pipelines.settings import HubSettings

    with CiviCRMSandbox() as civi:
        _member(
            tmp_path,
            "civi_trust",
            {"kind": "civicrm", "site_url": civi.url, "api_key": {"env": "HUB_CIVI_TRUST_KEY"}},
        )
        monkeypatch.setenv("HUB_CIVI_TRUST_KEY", civi.api_key)
        monkeypatch.setenv("HUB_MEMBERS_DIR", str(tmp_path))
        monkeypatch.setenv("HUB_HOME", str(tmp_path / ".hub"))
        settings = HubSettings.from_env()
        member = settings.members_dir / "civi_trust.yaml"
        assert member.exists()

        def load() -> None:
            from connectors.civicrm.settings import CiviCRMSettings

            source = civicrm_source(CiviCRMSettings(site_url=civi.url), civi.api_key)
            destination = dlt.destinations.duckdb(str(tmp_path / "raw.duckdb"))
            raw_pipeline("civi_trust", destination, settings.pipelines_dir).run(source)

        load()
        code, out = _check("civi_trust", tmp_path, monkeypatch)
        assert code == 0 and "held" not in out, out
        civi.hide("Contact")
        load()
        code, out = _check("civi_trust", tmp_path, monkeypatch)
        out = " ".join(out.split())
        assert code == 1, out  # nobody visible: the check fails, and says why
        assert "? permission: view all contacts (0 contacts visible)" in out
        contacts = len(civi.data.tables["Contact"])
        assert f"! civicrm__contact: {contacts} records no longer listed since " in out
        assert f"! civicrm__email: {contacts} rows of contacts no longer listed" in out
        assert "connector.max_deleted_share: 1 for one run" in out
        summary = " ".join(_render(render_summary([], settings)).split())
        assert "Deletions held back" in summary
        assert f"! civi_trust: civicrm__contact: {contacts} records no longer listed" in summary
        civi.unhide("Contact")
        load()
        code, out = _check("civi_trust", tmp_path, monkeypatch)
        assert "no longer listed" not in out
        assert "Deletions held back" not in _render(render_summary([], settings))


def _render(renderable: object) -> str:
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(renderable)
    return console.export_text()


def test_crm_members_are_listed_but_not_loaded_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _member(
        tmp_path,
        "civi_trust",
        {
            "kind": "civicrm",
            "site_url": "http://127.0.0.1:9",
            "api_key": {"env": "HUB_CIVI_TRUST_X"},
        },
    )
    monkeypatch.setenv("HUB_MEMBERS_DIR", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    listed = CliRunner().invoke(app, ["members"])
    assert listed.exit_code == 0 and "civi_trust" in listed.output and "civicrm" in listed.output


def test_check_spreadsheet_member_prints_the_rows_to_fix_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The values are printed as the file has them: '[b]' is text, not terminal markup."""
    data = tmp_path / "sheet_trust"
    data.mkdir()
    (data / "people.csv").write_text(
        "Client ID,DOB\r\n1,[b]31/02/1990[/b]\r\n2,1990-01-01\r\n", encoding="utf-8"
    )
    _member(
        tmp_path,
        "sheet_trust",
        {
            "kind": "spreadsheet",
            "tables": {
                "person": {
                    "file": "sheet_trust/people.csv",
                    "columns": {"source_id": "Client ID", "birth_date": "DOB"},
                }
            },
        },
    )
    config = yaml.safe_load((tmp_path / "sheet_trust.yaml").read_text(encoding="utf-8"))
    config["sharing"] = {"consent": "none"}
    (tmp_path / "sheet_trust.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    code, output = _check("sheet_trust", tmp_path, monkeypatch)
    assert code == 0, output
    assert "rows rejected (all 1; fix them in the file):" in output
    assert "row 2, column 'DOB' = '[b]31/02/1990[/b]': not a date" in output
