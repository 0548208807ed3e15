"""CiviCRM contacts, loaded over real HTTP from the sandbox, become canonical people."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from connectors.civicrm import civicrm_source, raw_pipeline
from connectors.members import load_member
from connectors.values import consent_line
from pipelines.cli import app
from sandboxes.civicrm import CiviCRMSandbox
from transforms.canonical import build_member
from transforms.consent_report import crm_consent_counts
from transforms.linkage import link_people
from transforms.warehouse import DuckDBWarehouse


@pytest.fixture()
def loaded(tmp_path: Path):
    (tmp_path / "members").mkdir()
    path = tmp_path / "members" / "bridge_centre.yaml"
    with CiviCRMSandbox(contacts=30, activities_per_contact=1) as civi:
        path.write_text(
            yaml.safe_dump(
                {
                    "name": "Bridge Centre",
                    "connector": {
                        "kind": "civicrm",
                        "site_url": civi.url,
                        "api_key": {"env": "HUB_BRIDGE_CENTRE_K"},
                    },
                }
            ),
            encoding="utf-8",
        )
        member = load_member(path)
        warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
        trashed = sorted(civi.data.tables["Contact"])[0]
        civi.trash_contact(trashed)
        phone_id = next(
            i for i, p in civi.data.tables["Phone"].items() if p["contact_id"] != trashed
        )
        civi.edit("Phone", phone_id, phone="12")
        pipeline = raw_pipeline("bridge_centre", warehouse.dlt_destination(), tmp_path / "dlt")
        pipeline.run(civicrm_source(member.connector.settings(), civi.api_key))
        build_member(warehouse, member)
        yield civi, warehouse, trashed


def test_contacts_become_normalised_consent_aware_people(loaded) -> None:
    civi, warehouse, trashed = loaded
    with warehouse.connect() as session:
        people = {
            row[0]: row[1:]
            for row in session.fetchall(
                "SELECT source_id, is_deleted, phone, postcode, email, consent_to_share, "
                "source_system FROM canonical.person WHERE org_id = 'bridge_centre'"
            )
        }
        warnings = session.fetchall(
            "SELECT column_name, raw_value, severity FROM quarantine.rejected_rows "
            "WHERE org_id = 'bridge_centre' AND entity = 'person'"
        )
    contacts = civi.data.tables["Contact"]
    assert set(people) == {str(i) for i in contacts}
    assert people[str(trashed)][0] is True  # trashed in CiviCRM: deleted in the hub
    # ... keeping no personal field (issue #18): no phone, postcode, e-mail or consent.
    assert people[str(trashed)][1:5] == (None, None, None, False)
    with warehouse.connect() as session:
        names = session.fetchall(
            "SELECT given_name, family_name, birth_date FROM canonical.person "
            "WHERE org_id = 'bridge_centre' AND source_id = ?",
            [str(trashed)],
        )
    assert names == [(None, None, None)]
    live = [p for k, p in people.items() if k != str(trashed)]
    phones = [p[1] for p in live if p[1]]
    assert phones and all(p.startswith("+447700900") for p in phones)  # E.164
    assert all(p[2] and p[2] == p[2].upper() and " " in p[2] for p in live)
    assert all(p[5] == "civicrm" for p in live)
    consenting = {
        str(i) for i, c in contacts.items() if c.get("Consent.share_data") and i != trashed
    }
    assert {k for k, p in people.items() if p[4]} == consenting
    assert warnings == [("Phone.phone", "12", "warning")]  # dropped, recorded, never silent


def test_civicrm_people_take_part_in_linkage(loaded) -> None:
    _civi, warehouse, trashed = loaded
    result = link_people(warehouse)
    with warehouse.connect() as session:
        linked = {
            r[0]
            for r in session.fetchall(
                "SELECT source_id FROM hub.person_link WHERE org_id = 'bridge_centre'"
            )
        }
    assert str(trashed) not in linked  # a deleted record leaves the people
    assert result.records == len(linked) > 0


def test_sharing_all_fills_only_missing_consent(loaded, tmp_path: Path) -> None:
    """`sharing.consent: all` once made every contact consenting, explicit "no" included."""
    civi, warehouse, trashed = loaded
    contacts = {i: c for i, c in civi.data.tables["Contact"].items() if i != trashed}
    declined = sorted(str(i) for i, c in contacts.items() if not c.get("Consent.share_data"))
    agreed = sorted(str(i) for i, c in contacts.items() if c.get("Consent.share_data"))
    assert declined and len(agreed) >= 2
    silent = agreed[0]  # as if the field had never been answered
    with warehouse.connect() as session:
        session.execute(
            "UPDATE raw_bridge_centre.civicrm__contact SET consent_to_share = NULL "
            "WHERE CAST(id AS TEXT) = ?",
            [silent],
        )
    path = tmp_path / "members" / "bridge_centre.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    path.write_text(yaml.safe_dump({**config, "sharing": {"consent": "all"}}), "utf-8")
    build_member(warehouse, load_member(path))
    with warehouse.connect() as session:
        consent = dict(
            session.fetchall(
                "SELECT source_id, consent_to_share FROM canonical.person "
                "WHERE org_id = 'bridge_centre' AND NOT is_deleted"
            )
        )
    assert consent[silent] is True
    assert not [k for k in declined if consent.get(k)]  # an explicit no stays no
    assert all(consent[k] for k in agreed if k in consent)
    # hub check says what the policy did, counted from the raw layer by the same rules.
    member = load_member(path)
    with warehouse.connect() as session:
        counts = crm_consent_counts(session, member)
    assert counts == {
        "blank_taken_as_yes": 1,
        "yes": len(agreed) - 1,
        "no_kept": len([k for k in declined if k in consent]),
    }
    assert sum(counts.values()) == len(consent)
    line = consent_line(member.sharing.consent, counts)
    assert "1 people with no answer counted as consenting" in line
    assert f"{counts['no_kept']} answered no and stay not consenting" in line
    # ... and `hub check` prints it, from the member's last load.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HUB_MEMBERS_DIR", str(path.parent))
        env.setenv("HUB_WAREHOUSE", str(warehouse.path))
        env.setenv("HUB_HOME", str(tmp_path / "hub"))
        env.setenv("HUB_BRIDGE_CENTRE_K", civi.api_key)
        env.setenv("COLUMNS", "300")
        out = CliRunner().invoke(app, ["check", "bridge_centre"]).output
    assert f"{line} (at the last load)" in " ".join(out.split())
    # A run holding the warehouse (another process) keeps the check waiting seconds, not
    # the lock's 15 minutes.
    import subprocess
    import sys
    import time

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom transforms.warehouse import DuckDBWarehouse\n"
            "with DuckDBWarehouse(sys.argv[1]).exclusive():\n"
            "    print('held', flush=True)\n    time.sleep(120)\n",
            str(warehouse.path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.MonkeyPatch.context() as env:
            env.setenv("HUB_MEMBERS_DIR", str(path.parent))
            env.setenv("HUB_WAREHOUSE", str(warehouse.path))
            env.setenv("HUB_HOME", str(tmp_path / "hub"))
            env.setenv("HUB_BRIDGE_CENTRE_K", civi.api_key)
            started = time.monotonic()
            out = CliRunner().invoke(app, ["check", "bridge_centre"]).output
        assert time.monotonic() - started < 30
    finally:
        holder.kill()
        holder.wait()
    assert "consent: not counted (a hub run holds the warehouse)" in out


def test_no_copy_of_the_people_lingers_after_a_load(loaded, tmp_path: Path) -> None:
    """The merge's _staging copy and dlt's local job files held every loaded contact's
    personal data indefinitely (issue #18): both are emptied once the load is done."""
    civi, warehouse, _ = loaded
    surname = next(
        c["last_name"] for c in civi.data.tables["Contact"].values() if c.get("last_name")
    )
    # A table's first load appends (no staging copy at all); the next one merges through it.
    member = load_member(tmp_path / "members" / "bridge_centre.yaml")
    civi.edit("Contact", sorted(civi.data.tables["Contact"])[1], first_name="Edited")
    pipeline = raw_pipeline("bridge_centre", warehouse.dlt_destination(), tmp_path / "dlt")
    pipeline.run(civicrm_source(member.connector.settings(), civi.api_key))
    with warehouse.connect() as session:
        staged = session.fetchall("SELECT COUNT(*) FROM raw_bridge_centre_staging.civicrm__contact")
        loaded_rows = session.fetchall("SELECT COUNT(*) FROM raw_bridge_centre.civicrm__contact")
    assert staged == [(0,)] and loaded_rows[0][0] > 0
    holding = [
        path
        for path in (tmp_path / "dlt").rglob("*")
        if path.is_file() and surname.encode() in path.read_bytes()
    ]
    assert not holding, holding


def test_a_trashed_contact_keeps_no_personal_field_even_raw(loaded) -> None:
    _civi, warehouse, trashed = loaded
    with warehouse.connect() as session:
        raw = session.fetchall(
            "SELECT is_deleted, first_name, last_name, birth_date, consent_to_share "
            "FROM raw_bridge_centre.civicrm__contact WHERE id = ?",
            [trashed],
        )
        others = session.fetchall(
            "SELECT COUNT(*) FROM raw_bridge_centre.civicrm__contact "
            "WHERE NOT is_deleted AND last_name IS NOT NULL"
        )
    assert raw == [(True, None, None, None, None)]
    assert others[0][0] > 0
