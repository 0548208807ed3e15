"""Member configuration: every mistake is reported with file, key and fix, all at once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from connectors.errors import MemberConfigError
from connectors.members import load_member, load_members

VALID = {
    "name": "Acme Trust",
    "connector": {
        "kind": "spreadsheet",
        "date_order": "day_first",
        "tables": {
            "person": {
                "file": "acme_trust/people.csv",
                "columns": {"source_id": "Client ID", "consent_to_share": "Consent"},
            }
        },
    },
    "mappings": {
        "programmes": {"Tenancy Support": "housing"},
        "outcomes": {"Tenancy kept": "tenancy_sustained"},
    },
}


def _write(tmp_path: Path, data: object, name: str = "acme_trust") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data, "utf-8")
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(MemberConfigError) as info:
        load_member(path)
    assert str(path) in str(info.value)
    return info.value.problems


def test_valid_member_loads_with_defaults(tmp_path: Path) -> None:
    member = load_member(_write(tmp_path, VALID))
    assert member.org_id == "acme_trust"
    assert member.raw_dataset == "raw_acme_trust"
    assert member.sharing.consent == "per_record"
    person_file = member.resolve(member.connector.tables["person"].file)
    assert person_file == tmp_path / "acme_trust" / "people.csv"


def test_all_problems_reported_together_with_fixes(tmp_path: Path) -> None:
    data = yaml.safe_load(yaml.safe_dump(VALID))
    data["conector_notes"] = "typo"
    data["connector"]["tables"]["person"]["columns"]["dob"] = "Date of birth"
    data["connector"]["tables"]["person"]["colums"] = {}
    data["mappings"]["programmes"]["Money"] = "finance"
    problems = _problems(_write(tmp_path, data))
    text = "\n".join(problems)
    assert "key 'conector_notes': unknown key" in text
    assert "key 'connector.tables.person.colums': unknown key (did you mean 'columns'?)" in text
    assert len(problems) == 2  # structural errors first; semantics are checked once they pass
    del data["conector_notes"], data["connector"]["tables"]["person"]["colums"]
    text = "\n".join(_problems(_write(tmp_path, data)))
    assert "columns.dob': not a field of person" in text and "birth_date" in text
    assert "'finance' is not an outcome area (did you mean 'financial_inclusion'?)" in text


def test_inline_secret_is_refused(tmp_path: Path) -> None:
    data = yaml.safe_load(yaml.safe_dump(VALID))
    data["connector"]["api_key"] = "s3cr3t-value"
    problems = _problems(_write(tmp_path, data))
    assert any("secrets must not be written in the file" in p for p in problems)
    assert not any("s3cr3t-value" in p for p in problems)  # never echo the secret


def test_unknown_connector_kind_lists_the_known_ones(tmp_path: Path) -> None:
    data = {**VALID, "connector": {"kind": "dropbox", "tables": {}}}
    text = "\n".join(_problems(_write(tmp_path, data)))
    assert "unknown connector kind" in text and "spreadsheet" in text


def test_per_record_consent_needs_a_consent_column(tmp_path: Path) -> None:
    data = yaml.safe_load(yaml.safe_dump(VALID))
    del data["connector"]["tables"]["person"]["columns"]["consent_to_share"]
    text = "\n".join(_problems(_write(tmp_path, data)))
    assert "per_record needs a consent column" in text


def test_bad_yaml_names_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: Acme\nconnector: [unclosed\n")
    assert "not valid YAML at line" in _problems(path)[0]


def test_invalid_org_id(tmp_path: Path) -> None:
    text = "\n".join(_problems(_write(tmp_path, VALID, name="Acme-Trust")))
    assert "not a valid organisation id" in text and "rename the file" in text


def test_labels_equal_but_for_case_and_spaces_are_flagged(tmp_path: Path) -> None:
    data = yaml.safe_load(yaml.safe_dump(VALID))
    data["mappings"]["programmes"]["tenancy  SUPPORT"] = "housing"
    text = "\n".join(_problems(_write(tmp_path, data)))
    assert "are the same label once case and spaces are ignored" in text


def test_registry_keeps_good_members_when_one_is_broken(tmp_path: Path) -> None:
    good = {
        **VALID,
        "connector": {
            **VALID["connector"],
            "tables": {
                "person": {**VALID["connector"]["tables"]["person"], "file": "good_one/people.csv"}
            },
        },
    }
    _write(tmp_path, good, "good_one")
    _write(tmp_path, {"name": "x"}, "bad_one")
    registry = load_members(tmp_path)
    assert list(registry.members) == ["good_one"]
    assert "bad_one" in registry.errors
    with pytest.raises(MemberConfigError, match="required but missing"):
        registry.get("bad_one")
    with pytest.raises(MemberConfigError, match="did you mean 'good_one'"):
        registry.get("good_on")


SALESFORCE = {
    "name": "Acme Trust",
    "connector": {
        "kind": "salesforce_npsp",
        "login_url": "https://acme.my.salesforce.com",
        "client_id": "3MVG9-consumer-key",
        "client_secret": {"env": "HUB_ACME_TRUST_SF_SECRET"},
        "consent_field": "Consent_To_Share__c",
    },
}
CIVICRM = {
    "name": "Acme Trust",
    "connector": {
        "kind": "civicrm",
        "site_url": "https://crm.acme.example",
        "url_style": "wordpress",
        "api_key": {"env": "HUB_ACME_TRUST_CIVI_KEY"},
    },
}


def test_salesforce_member_resolves_credentials_only_at_run_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = load_member(_write(tmp_path, SALESFORCE))
    assert member.connector.kind == "salesforce_npsp"
    assert member.connector.settings().client_id == "3MVG9-consumer-key"
    monkeypatch.delenv("HUB_ACME_TRUST_SF_SECRET", raising=False)
    with pytest.raises(MemberConfigError, match="HUB_ACME_TRUST_SF_SECRET is not set"):
        member.connector.credentials()
    monkeypatch.setenv("HUB_ACME_TRUST_SF_SECRET", "s3cret")
    assert member.connector.credentials().client_secret == "s3cret"
    assert "s3cret" not in repr(member)


def test_salesforce_flow_needs_its_credentials(tmp_path: Path) -> None:
    data = yaml.safe_load(yaml.safe_dump(SALESFORCE))
    data["connector"]["auth"] = "jwt_bearer"
    text = "\n".join(_problems(_write(tmp_path, data)))
    assert "auth 'jwt_bearer' needs 'username' and 'private_key" in text
    data["connector"]["client_secret"] = "inline-value"
    text = "\n".join(_problems(_write(tmp_path, data)))
    assert "secrets must not be written in the file" in text and "inline-value" not in text


def test_civicrm_member_and_its_mistakes(tmp_path: Path) -> None:
    member = load_member(_write(tmp_path, CIVICRM))
    assert member.connector.settings().url_style == "wordpress"
    data = yaml.safe_load(yaml.safe_dump(CIVICRM))
    data["connector"]["url_stlye"] = "clean"
    data["connector"]["consent_field"] = None
    text = "\n".join(_problems(_write(tmp_path, data)))
    assert "key 'connector.url_stlye': unknown key (did you mean 'url_style'?)" in text
    del data["connector"]["url_stlye"]
    text = "\n".join(_problems(_write(tmp_path, data)))
    assert "per_record consent needs the field that records it" in text
