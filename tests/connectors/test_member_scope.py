"""A member's config reaches only its own secrets, and CRMs only over https (issue #18).

Tried as a hostile member would: name another member's environment variable or key file and
point the CRM URL at a capture server of one's choosing. The file is refused before anything
is sent, and no output — messages, the warehouse, lineage events, Dagster's storage —
ever holds a secret (a planted canary is searched for in every file the hub writes).
"""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from connectors.errors import MemberConfigError
from connectors.members import load_member, load_members
from connectors.scope import env_prefix, secrets_dir, url_problems
from tests.pipelines.hub_cli import hub, hub_env

CANARY = "canary-5f3b9e-never-print-me"


def _write(folder: Path, org: str, connector: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{org}.yaml"
    path.write_text(yaml.safe_dump({"name": org.title(), "connector": connector}), "utf-8")
    return path


def _civicrm(url: str, **secrets: dict) -> dict:
    return {"kind": "civicrm", "site_url": url, **secrets}


@pytest.fixture
def secrets_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "secrets"
    monkeypatch.setenv("HUB_SECRETS_DIR", str(root))
    monkeypatch.delenv("HUB_SECRET_ENV_PREFIX", raising=False)
    return root


def test_environment_variables_are_scoped_to_the_member(
    tmp_path: Path, secrets_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUB_SOUTHBANK_ADVICE_SF_SECRET", CANARY)
    path = _write(
        tmp_path / "members",
        "mallory",
        _civicrm("https://crm.example.org", api_key={"env": "HUB_SOUTHBANK_ADVICE_SF_SECRET"}),
    )
    with pytest.raises(MemberConfigError) as err:
        load_member(path)
    text = str(err.value)
    assert "connector.api_key.env" in text and "HUB_MALLORY_" in text
    assert CANARY not in text
    # Its own variable is fine; the operator, not the member, may change the prefix.
    assert env_prefix("mallory") == "HUB_MALLORY_"
    ok = _write(
        tmp_path / "members",
        "mallory",
        _civicrm("https://crm.example.org", api_key={"env": "HUB_MALLORY_CIVI_KEY"}),
    )
    assert load_member(ok).connector.api_key.env == "HUB_MALLORY_CIVI_KEY"
    monkeypatch.setenv("HUB_SECRET_ENV_PREFIX", "CHARITY_{ORG}_")
    with pytest.raises(MemberConfigError, match="CHARITY_MALLORY_"):
        load_member(ok)


def test_a_member_cannot_reach_a_longer_named_members_variables(
    tmp_path: Path, secrets_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prefixes nest: "north" (HUB_NORTH_) covered north_aid's HUB_NORTH_AID_CIVI_KEY, and
    member "test" covered the hub's own HUB_TEST_POSTGRES."""
    monkeypatch.setenv("HUB_NORTH_AID_CIVI_KEY", CANARY)
    members = tmp_path / "members"
    theirs = {"env": "HUB_NORTH_AID_CIVI_KEY"}
    _write(members, "north_aid", _civicrm("https://a.example.org", api_key=theirs))
    thief = _write(members, "north", _civicrm("https://b.example.org", api_key=theirs))
    with pytest.raises(MemberConfigError, match="belongs to member north_aid") as err:
        load_member(thief)
    assert CANARY not in str(err.value)
    registry = load_members(members)
    assert list(registry.members) == ["north_aid"] and list(registry.errors) == ["north"]
    # Its own variables, even ones that start with another word, are fine.
    mine = _write(
        members, "north", _civicrm("https://b.example.org", api_key={"env": "HUB_NORTH_AIDE_KEY"})
    )
    assert load_member(mine).connector.api_key.env == "HUB_NORTH_AIDE_KEY"
    hub_setting = _write(
        members, "test", _civicrm("https://b.example.org", api_key={"env": "HUB_TEST_POSTGRES"})
    )
    with pytest.raises(MemberConfigError, match="setting of the hub itself"):
        load_member(hub_setting)


def test_key_files_are_confined_to_the_members_folder(
    tmp_path: Path, secrets_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = secrets_dir("southbank_advice")
    other.mkdir(parents=True)
    (other / "site.key").write_text(CANARY, "utf-8")
    mine = secrets_dir("mallory")
    mine.mkdir(parents=True)
    (mine / "link.key").symlink_to(other / "site.key")
    (mine / "own.key").write_text("mallory-site-key", "utf-8")
    monkeypatch.setenv("HUB_MALLORY_CIVI_KEY", "k")
    members = tmp_path / "members"
    for reference in (str(other / "site.key"), "../southbank_advice/site.key", "link.key"):
        path = _write(
            members,
            "mallory",
            _civicrm(
                "https://crm.example.org",
                api_key={"env": "HUB_MALLORY_CIVI_KEY"},
                site_key={"file": reference},
            ),
        )
        with pytest.raises(MemberConfigError, match=r"connector\.site_key\.file") as err:
            load_member(path)
        assert CANARY not in str(err.value) and "secrets folder" in str(err.value)
    path = _write(
        members,
        "mallory",
        _civicrm(
            "https://crm.example.org",
            api_key={"env": "HUB_MALLORY_CIVI_KEY"},
            site_key={"file": "own.key"},
        ),
    )
    member = load_member(path)
    assert member.connector.site_key.resolve() == "mallory-site-key"
    # Swapped for a link after loading: refused when read, not followed.
    (mine / "own.key").unlink()
    (mine / "own.key").symlink_to(other / "site.key")
    with pytest.raises(MemberConfigError, match="secrets folder"):
        member.connector.site_key.resolve()
    # A pipe (would block) or a huge file (not a key) in its own folder: refused when read.
    (mine / "own.key").unlink()
    os.mkfifo(mine / "own.key")
    with pytest.raises(MemberConfigError, match="not a regular file"):
        member.connector.site_key.resolve()
    (mine / "own.key").unlink()
    (mine / "own.key").write_bytes(b"k" * 100_000)
    with pytest.raises(MemberConfigError, match="not a key"):
        member.connector.site_key.resolve()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://crm.example.org", "must start with https://"),
        ("ftp://crm.example.org", "must start with https://"),
        ("https://admin:pw@crm.example.org", "user name or password"),
        ("https://crm.example.org/?api_key=abc", "looks like a secret"),
        ("https://crm.example.org/?page=CiviCRM&token=abc", "looks like a secret"),
        ("https://", "no host name"),
    ],
)
def test_crm_urls_must_be_https_without_credentials(url: str, problem: str) -> None:
    problems = url_problems(url)
    assert any(problem in p for p in problems), problems
    assert not any("pw" in p or "abc" in p for p in problems)  # never repeated


def test_loopback_http_and_plain_https_are_allowed() -> None:
    for url in (
        "https://crm.example.org",
        "https://crm.example.org/wp-admin/admin.php?page=CiviCRM",
        "http://127.0.0.1:8080",
        "http://localhost:9000/civicrm",
        "http://[::1]:8000",
    ):
        assert url_problems(url) == [], url


class _Capture(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.seen.append(bytes(self.headers) + self.rfile.read(length))
        self.send_response(500)
        self.end_headers()

    do_GET = do_POST

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def capture() -> Iterator[tuple[str, list[bytes]]]:
    _Capture.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Capture.seen
    finally:
        server.shutdown()


def test_hub_check_sends_no_other_members_secret_to_a_capture_server(
    tmp_path: Path, capture: tuple[str, list[bytes]]
) -> None:
    url, seen = capture
    other = tmp_path / "hub" / "secrets" / "southbank_advice"
    other.mkdir(parents=True)
    (other / "site.key").write_text(CANARY, "utf-8")
    members = tmp_path / "members"
    _write(
        members,
        "mallory",
        _civicrm(
            url,
            api_key={"env": "HUB_SOUTHBANK_ADVICE_SF_SECRET"},
            site_key={"file": str(other / "site.key")},
        ),
    )
    env = hub_env(tmp_path, members, HUB_SOUTHBANK_ADVICE_SF_SECRET=CANARY)
    env.pop("HUB_SECRETS_DIR", None)
    for args in (["check", "mallory"], ["run"]):
        done = hub(args, env)
        output = done.stdout + done.stderr
        assert done.returncode != 0, output
        assert "not one of this member's secrets" in output or "invalid" in output
        assert CANARY not in output
    assert seen == []  # nothing was sent at all
    assert not _files_holding(tmp_path / "hub", CANARY.encode(), skip=other)


def _files_holding(root: Path, needle: bytes, skip: Path | None = None) -> list[Path]:
    found = []
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if skip is not None and path.is_relative_to(skip):
                continue
            try:
                if needle in path.read_bytes():
                    found.append(path)
            except OSError:
                continue
    return found


@pytest.mark.slow
def test_a_members_own_secret_appears_in_no_output(tmp_path: Path) -> None:
    """A canary API key, used for real against the CiviCRM sandbox (with a wrong key once,
    so errors are written too): absent from every message and every file the hub writes
    (warehouse, dlt state, lineage, Dagster storage, releases)."""
    from sandboxes.civicrm import CiviCRMSandbox

    members = tmp_path / "members"
    with CiviCRMSandbox(contacts=6, activities_per_contact=1, api_key=CANARY) as civi:
        _write(
            members,
            "bridge_centre",
            _civicrm(civi.url, api_key={"env": "HUB_BRIDGE_CENTRE_CIVI_KEY"}),
        )
        env = hub_env(tmp_path, members, HUB_BRIDGE_CENTRE_CIVI_KEY=CANARY)
        outputs = []
        for args in (["check", "bridge_centre"], ["run"]):
            done = hub(args, env)
            outputs.append(done.stdout + done.stderr)
            assert done.returncode in (0, 1), done.stdout + done.stderr
        assert "✓ load bridge_centre" in outputs[-1]
        env["HUB_BRIDGE_CENTRE_CIVI_KEY"] = CANARY + "-wrong"
        done = hub(["run"], env)
        outputs.append(done.stdout + done.stderr)
    assert not [o for o in outputs if CANARY in o]
    assert not _files_holding(tmp_path, CANARY.encode(), skip=members)


# -- member data files stay in the member's own folder -----------------------------------


def _sheet_member(members: Path, org: str, file: str) -> Path:
    members.mkdir(parents=True, exist_ok=True)
    path = members / f"{org}.yaml"
    config = {
        "name": org.title(),
        "connector": {
            "kind": "spreadsheet",
            "tables": {"person": {"file": file, "columns": {"source_id": "id"}}},
        },
        "sharing": {"consent": "none"},
    }
    path.write_text(yaml.safe_dump(config), "utf-8")
    return path


def test_member_files_are_confined_to_the_members_own_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HUB_DATA_DIR", raising=False)
    members = tmp_path / "members"
    (tmp_path / "mallory").mkdir()
    (tmp_path / "mallory" / "people.csv").write_text("id\n1\n", "utf-8")
    (tmp_path / "northside").mkdir()
    (tmp_path / "northside" / "people.csv").write_text("id\nsecret-person\n", "utf-8")
    (tmp_path / "mallory" / "passwd.csv").symlink_to("/etc/passwd")
    (tmp_path / "mallory" / "theirs.csv").symlink_to(tmp_path / "northside" / "people.csv")
    for reference, says in (
        ("../northside/people.csv", "not in a folder named mallory"),
        ("../mallory/../northside/people.csv", "not in a folder named mallory"),
        ("/etc/passwd", "outside the members' data folder"),
        ("../../../../../../etc/passwd", "outside the members' data folder"),
        ("../mallory/passwd.csv", "outside the members' data folder"),
        ("../mallory/theirs.csv", "not in a folder named mallory"),
    ):
        with pytest.raises(MemberConfigError) as err:
            load_member(_sheet_member(members, "mallory", reference))
        assert "connector.tables.person.file" in str(err.value) and says in str(err.value)
    ok = load_member(_sheet_member(members, "mallory", "../mallory/people.csv"))
    assert ok.connector.tables["person"].file == Path("../mallory/people.csv")
    # The operator moves the data root; the member's folder moves with it.
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(MemberConfigError, match="outside the members' data folder"):
        load_member(_sheet_member(members, "mallory", "../mallory/people.csv"))


def test_a_member_named_like_a_parent_folder_cannot_read_the_members_inside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Member "data" was allowed <root>/data/beta/people.csv: a folder named after it is on
    the path. The deepest member-named folder decides whose file it is."""
    monkeypatch.delenv("HUB_DATA_DIR", raising=False)
    members = tmp_path / "members"
    (tmp_path / "data" / "beta").mkdir(parents=True)
    (tmp_path / "data" / "beta" / "people.csv").write_text("id\nsecret-person\n", "utf-8")
    (tmp_path / "data" / "data").mkdir()
    (tmp_path / "data" / "data" / "people.csv").write_text("id\n1\n", "utf-8")
    beta = load_member(_sheet_member(members, "beta", "../data/beta/people.csv"))
    thief = _sheet_member(members, "data", "../data/beta/people.csv")
    with pytest.raises(MemberConfigError, match="in member beta's folder"):
        load_member(thief)
    own = load_member(_sheet_member(members, "data", "../data/data/people.csv"))
    assert own.connector.tables["person"].file == Path("../data/data/people.csv")
    assert beta.org_id == "beta"  # beta, inside a folder named "data", still reads its own
    # The same at read time, e.g. for a member file loaded before beta joined.
    from connectors.errors import SpreadsheetError
    from connectors.spreadsheets import read_entity

    (members / "beta.yaml").unlink()
    early = load_member(_sheet_member(members, "data", "../data/beta/people.csv"))
    _sheet_member(members, "beta", "../data/beta/people.csv")
    with pytest.raises(SpreadsheetError, match="in member beta's folder"):
        list(read_entity(early, "person"))


def _swapped_after_loading(tmp_path: Path, target: str):
    """Mallory's member, whose good people file is swapped for a link to ``target``."""
    members = tmp_path / "members"
    (tmp_path / "mallory").mkdir()
    people = tmp_path / "mallory" / "people.csv"
    people.write_text("id\n1\n", "utf-8")
    member = load_member(_sheet_member(members, "mallory", "../mallory/people.csv"))
    people.unlink()
    people.symlink_to(target)
    return member


def test_a_link_swapped_in_after_loading_is_not_read(tmp_path: Path) -> None:
    from connectors.errors import SpreadsheetError
    from connectors.spreadsheets import read_entity

    member = _swapped_after_loading(tmp_path, "/etc/passwd")
    with pytest.raises(SpreadsheetError, match="outside the members' data folder"):
        list(read_entity(member, "person"))


@pytest.mark.slow
def test_a_symlink_to_etc_passwd_puts_nothing_of_it_in_the_warehouse(tmp_path: Path) -> None:
    """The review's case: a member file linked to /etc/passwd put its fields into
    quarantine.rejected_rows. Now hub run refuses the member and the file is never read."""
    members = tmp_path / "members"
    (tmp_path / "mallory").mkdir()
    (tmp_path / "mallory" / "people.csv").symlink_to("/etc/passwd")
    _sheet_member(members, "mallory", "../mallory/people.csv")
    done = hub(["run"], hub_env(tmp_path, members))
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "outside the members' data folder" in output
    assert "root:" not in output
    assert not _files_holding(tmp_path / "hub", b"root:x:0:0")


def test_a_departing_members_folders_are_the_ones_named_after_it(tmp_path: Path) -> None:
    """`hub remove-member --delete-files` deletes exactly what the member could read."""
    from connectors.scope import member_data_folders

    root = tmp_path / "network"
    for folder in ("data/beta", "2025/beta/sub", "data/alpha", "data/betamax", "beta_not"):
        (root / folder).mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere" / "beta"
    elsewhere.mkdir(parents=True)
    (root / "data" / "alpha" / "link").symlink_to(elsewhere.parent)  # not followed
    (root / "beta" / "members").mkdir(parents=True)  # holds the members folder: kept
    found = member_data_folders("beta", root, keep=(root / "beta" / "members",))
    assert found == [root / "2025" / "beta", root / "data" / "beta"]
    assert member_data_folders("gamma", root) == []
    # Member "data" leaving takes its own folder, not the folder of everyone's data.
    (root / "data" / "data").mkdir()
    assert member_data_folders("data", root, other_ids=["alpha", "beta"]) == [
        root / "data" / "data"
    ]


def test_a_named_pipe_is_refused_not_waited_on(tmp_path: Path) -> None:
    """Opening a FIFO with no writer blocks for ever: one member's pipe would hold the run."""
    from connectors.errors import SpreadsheetError
    from connectors.spreadsheets import check_member, read_entity

    members = tmp_path / "members"
    (tmp_path / "mallory").mkdir()
    os.mkfifo(tmp_path / "mallory" / "people.csv")
    member = load_member(_sheet_member(members, "mallory", "../mallory/people.csv"))
    with pytest.raises(SpreadsheetError, match="not a regular file"):
        list(read_entity(member, "person"))
    report = check_member(member)
    assert not report.ok and "not a regular file" in report.render()


def test_a_link_to_an_endless_device_is_not_hashed(tmp_path: Path) -> None:
    """The load hashes each file to skip unchanged ones; a link swapped to /dev/zero after
    the member file was read would have been hashed for ever."""
    from connectors.errors import SpreadsheetError
    from connectors.spreadsheets.fingerprints import table_fingerprint

    member = _swapped_after_loading(tmp_path, "/dev/zero")
    with pytest.raises(SpreadsheetError, match="outside the members' data folder"):
        table_fingerprint(member, "person")
