"""The members' ``events:`` section: what the file may say, and what ``hub members`` and
``hub check`` report about a bad or missing event secret."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from connectors.errors import MemberConfigError
from connectors.members import load_member
from connectors.salesforce_npsp.ids import id15, same_id
from events.doors import describe_doors, resolve_doors, webhook_key
from pipelines.cli import app
from tests.events.receiver_kit import SF_ORG_ID, new_secret, write_member

ROOT = Path(__file__).resolve().parents[2]


def _problems(path: Path) -> str:
    with pytest.raises(MemberConfigError) as err:
        load_member(path)
    return " ".join(str(err.value).split())


def test_event_secrets_are_references_of_the_members_own(tmp_path: Path) -> None:
    inline = write_member(tmp_path, "acme_trust", events={"webhook_secret": "whsec_abc"})
    assert "key 'events.webhook_secret': secrets must not be written in the file" in _problems(
        inline
    )
    write_member(tmp_path, "other_org")
    foreign = write_member(
        tmp_path,
        "acme_trust",
        events={
            "webhook_secret": {"env": "HUB_OTHER_ORG_WEBHOOK_SECRET"},
            "outbound_message_token": {"env": "HUB_EVENTS_INBOX"},
            "organization_id": "00D123",
        },
    )
    text = _problems(foreign)
    assert "key 'events.webhook_secret.env': environment variable HUB_OTHER_ORG_WEBHOOK" in text
    assert "key 'events.organization_id': not a Salesforce org id" in text
    typo = write_member(tmp_path, "acme_trust", events={"webhok": {"env": "HUB_ACME_TRUST_W"}})
    assert "key 'events.webhok': unknown key (did you mean 'webhook_secret'?)" in _problems(typo)
    hub_setting = write_member(
        tmp_path, "events", events={"webhook_secret": {"env": "HUB_EVENTS_INBOX"}}
    )
    assert "HUB_EVENTS_INBOX is a setting of the hub itself" in _problems(hub_setting)


def test_outbound_messages_need_salesforce_and_the_org_id(tmp_path: Path) -> None:
    token = {"env": "HUB_ACME_TRUST_OM_TOKEN"}
    civi = write_member(tmp_path, "acme_trust", "civicrm", {"outbound_message_token": token})
    assert "only a Salesforce member sends Outbound Messages" in _problems(civi)
    no_org = write_member(tmp_path, "acme_trust", events={"outbound_message_token": token})
    assert "key 'events.organization_id': required with outbound_message_token" in _problems(no_org)
    ok = write_member(
        tmp_path,
        "acme_trust",
        events={"outbound_message_token": token, "organization_id": SF_ORG_ID[:15]},
    )
    assert load_member(ok).events.organization_id == SF_ORG_ID[:15]
    assert SF_ORG_ID[15] == "E"  # "00D5g": only the D is a capital
    typo = SF_ORG_ID[:15] + "F" + SF_ORG_ID[16:]  # a suffix making the first 0 a capital
    bad = write_member(
        tmp_path, "acme_trust", events={"outbound_message_token": token, "organization_id": typo}
    )
    assert "not a Salesforce org id" in _problems(bad)


def test_salesforce_ids_compare_across_their_two_forms() -> None:
    assert id15(SF_ORG_ID) == SF_ORG_ID[:15]
    assert same_id(SF_ORG_ID, SF_ORG_ID[:15]) and same_id(SF_ORG_ID.upper(), SF_ORG_ID)
    assert same_id(SF_ORG_ID.lower(), SF_ORG_ID[:15])  # the suffix restores the case
    assert not same_id(SF_ORG_ID[:15].lower(), SF_ORG_ID[:15])  # 15 characters: case counts
    assert id15("00D12345") is None and id15("00D5g000004XXXX!") is None
    assert id15("000000000000000AAB") is None  # the suffix marks a digit as a capital


def test_webhook_keys_must_be_strict_base64(monkeypatch: pytest.MonkeyPatch) -> None:
    good = new_secret()
    assert webhook_key(good) is not None and webhook_key(good.removeprefix("whsec_"))
    assert webhook_key("whsec_c2hvcnQ=") is None  # 5 bytes: guessable
    assert webhook_key(good[:-4] + "$" + good[-3:]) is None  # a stray character


def _cli(args: list[str], members: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setenv("HUB_MEMBERS_DIR", str(members))
    monkeypatch.setenv("HUB_HOME", str(members / ".hub"))
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, args)
    return result.exit_code, " ".join(result.output.split())


def test_hub_members_and_check_report_closed_doors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = tmp_path / "members"
    members.mkdir()
    # A spreadsheet member (files beside it) whose webhook secret is not exported yet.
    shutil.copytree(ROOT / "sample_data" / "northside_housing", tmp_path / "northside_housing")
    config = yaml.safe_load((ROOT / "members" / "northside_housing.yaml").read_text())
    for table in config["connector"]["tables"].values():
        table["file"] = "../northside_housing/" + Path(table["file"]).name
    config["events"] = {"webhook_secret": {"env": "HUB_NORTHSIDE_HOUSING_WEBHOOK_SECRET"}}
    (members / "northside_housing.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HUB_NORTHSIDE_HOUSING_WEBHOOK_SECRET", raising=False)
    code, out = _cli(["members"], members, monkeypatch)
    assert code == 0, out
    assert (
        "✗ northside_housing: events: webhook door closed (the receiver answers 503 until "
        "fixed): events.webhook_secret: environment variable HUB_NORTHSIDE_HOUSING_WEBHOOK_SECRET"
        " is not set" in out
    )
    # Set, but not a Standard Webhooks key: still closed, and the value is never shown.
    member = load_member(members / "northside_housing.yaml")
    monkeypatch.setenv("HUB_NORTHSIDE_HOUSING_WEBHOOK_SECRET", "hunter2-not-base64!")
    ((ok, line),) = describe_doors(member)
    assert not ok and "is not a Standard Webhooks key" in line and "hunter2" not in line
    assert resolve_doors(member).webhook is None
    monkeypatch.setenv("HUB_NORTHSIDE_HOUSING_WEBHOOK_SECRET", new_secret())
    code, out = _cli(["check", "northside_housing"], members, monkeypatch)
    assert code == 0, out
    assert (
        "✓ events: webhook accepted at POST /members/northside_housing/webhook "
        "(environment variable HUB_NORTHSIDE_HOUSING_WEBHOOK_SECRET)" in out
    )
    assert resolve_doors(member).webhook is not None
