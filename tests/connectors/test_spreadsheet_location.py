"""connector.location: a spreadsheet member's files in a folder of its own or in a bucket.

The location is untrusted input (validated with the key and the fix in every message); a
remote one is read through fsspec into the member's cache under HUB_HOME, and the reader
works on that copy. fsspec's in-process ``memory://`` filesystem stands in for a bucket (the
hub operator's HUB_TEST_MEMORY_LOCATIONS=1 allows it; a member cannot).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import fsspec
import pytest
import yaml

from connectors.errors import MemberConfigError, SpreadsheetError
from connectors.members import Member, load_member
from connectors.spreadsheets.records import read_entity
from connectors.spreadsheets.remote import MANIFEST, cache_root, sync_location
from tests.connectors.spreadsheet_helpers import write_text
from tests.pipelines.hub_cli import hub, hub_env

ORG = "acme_trust"
SESSIONS = {
    "file": "sessions-*.csv",
    "columns": {"person_source_id": "Client", "delivered_on": "Date"},
    "defaults": {"programme": "Food Bank"},
}


def _config(location: str | None, options: dict[str, Any] | None = None) -> dict[str, Any]:
    connector: dict[str, Any] = {
        "kind": "spreadsheet",
        "tables": {
            "person": {"file": "people.csv", "columns": {"source_id": "Client ID"}},
            "service_delivery": SESSIONS,
        },
    }
    if location is not None:
        connector["location"] = location
    if options is not None:
        connector["location_options"] = options
    return {
        "name": "Acme Trust",
        "connector": connector,
        "sharing": {"consent": "none"},
        "mappings": {"programmes": {"Food Bank": "food_security"}},
    }


def _write(tmp_path: Path, config: dict[str, Any], org: str = ORG) -> Path:
    folder = tmp_path / "members"
    folder.mkdir(exist_ok=True)
    path = folder / f"{org}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _problems(tmp_path: Path, location: str, options: dict[str, Any] | None = None) -> str:
    with pytest.raises(MemberConfigError) as caught:
        load_member(_write(tmp_path, _config(location, options)))
    return "\n".join(caught.value.problems)


@pytest.fixture
def memory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """An empty in-process bucket, allowed as a location, and a hub home of the test's own."""
    monkeypatch.setenv("HUB_TEST_MEMORY_LOCATIONS", "1")
    monkeypatch.setenv("HUB_HOME", str(tmp_path / "hub"))
    fs = fsspec.filesystem("memory")
    if fs.exists("/drop"):
        fs.rm("/drop", recursive=True)
    yield fs
    if fs.exists("/drop"):
        fs.rm("/drop", recursive=True)


def test_a_location_must_be_the_members_own_and_carry_no_credentials(tmp_path: Path) -> None:
    text = _problems(tmp_path, "https://files.example.org/acme_trust/")
    assert "key 'connector.location': the protocol 'http(s)://' is not allowed" in text
    assert "s3://bucket/prefix/" in text  # the fix names what to write
    assert "'ftp://' is not allowed" in _problems(tmp_path, "ftp://host/acme_trust/")
    assert "'memory://' is not allowed" in _problems(tmp_path, "memory://drop/acme_trust/")
    # The hub's default credentials reach every member's bucket: the path must be its own.
    text = _problems(tmp_path, "s3://network-drop/exports/")
    assert "must have a folder named acme_trust" in text
    assert "member beta's folder" in _problems_beside(tmp_path, "s3://drop/acme_trust/beta/")
    text = _problems(tmp_path, "s3://AKIA:sekrit@bucket/acme_trust/")
    assert "carries a user name, password or port" in text and "sekrit" not in text
    assert "remove the '?…'" in _problems(tmp_path, "s3://bucket/acme_trust/?token=abc")
    assert "'..' are not allowed" in _problems(tmp_path, "s3://bucket/acme_trust/../beta/")
    # Credentials only as references to the member's own secrets.
    text = _problems(tmp_path, "s3://bucket/x/", {"key": "AKIAEXAMPLE", "secret": "s"})
    assert "location_options.key': secrets must not be written in the file" in text
    assert "AKIAEXAMPLE" not in text
    text = _problems(tmp_path, "https://files.example.org/", {"key": "AKIAEXAMPLE"})
    assert "location_options.key': secrets must not be written" in text  # said either way
    text = _problems(tmp_path, "s3://bucket/x/", {"key": {"env": "HUB_OTHER_KEY"}})
    assert "key 'connector.location_options.key.env'" in text and "HUB_ACME_TRUST_" in text
    assert "not an option of s3://" in _problems(tmp_path, "s3://b/acme_trust/", {"anon": "1"})
    # The hub's default credentials are never sent to an endpoint the member names.
    text = _problems(tmp_path, "s3://b/acme_trust/", {"endpoint_url": "https://s3.evil.test"})
    assert "an endpoint needs the member's own keys" in text
    # A local folder must be inside the member's data folder, as files must.
    elsewhere = tmp_path / "shared"
    elsewhere.mkdir()
    text = _problems(tmp_path, f"file://{elsewhere}/")
    assert "is not this member's own" in text and str(tmp_path / ORG) in text
    # With a remote location, files are named relative to it.
    config = _config("s3://bucket/acme_trust/")
    config["connector"]["tables"]["person"]["file"] = "/etc/passwd"
    with pytest.raises(MemberConfigError, match="name the file relative to it"):
        load_member(_write(tmp_path, config))


def _problems_beside(tmp_path: Path, location: str) -> str:
    """Problems of acme_trust's location when member beta's file is beside it."""
    (tmp_path / "members").mkdir(exist_ok=True)
    (tmp_path / "members" / "beta.yaml").write_text("name: Beta\n", encoding="utf-8")
    try:
        return _problems(tmp_path, location)
    finally:
        (tmp_path / "members" / "beta.yaml").unlink()


def test_valid_remote_locations_are_accepted(tmp_path: Path) -> None:
    for location, options in [
        ("s3://network-drop/acme_trust/", None),
        ("gs://bucket/exports/", {"token": {"file": "gcs.json"}}),
        ("az://container/acme_trust/", {"account_name": "charitydrop"}),
        ("abfs://drop@charity.dfs.core.windows.net/acme_trust/", None),
        ("s3://b/x/", {"key": {"env": "HUB_ACME_TRUST_S3_KEY"}, "region": "eu-west-2"}),
    ]:
        member = load_member(_write(tmp_path, _config(location, options)))
        assert member.location is not None and member.location.remote
        with pytest.raises(MemberConfigError, match="read from the hub's copy"):
            member.resolve(Path("people.csv"))  # never the YAML's folder by mistake


def test_a_local_folder_location_holds_the_files(tmp_path: Path) -> None:
    folder = tmp_path / ORG / "exports"
    folder.mkdir(parents=True)
    write_text(folder / "people.csv", ["Client ID", "1", "2"])
    write_text(folder / "sessions-2025-01.csv", ["Client,Date", "1,2025-01-02"])
    for location in ("../acme_trust/exports", f"file://{folder}/"):
        member = load_member(_write(tmp_path, _config(location)))
        assert member.resolve(Path("people.csv")) == folder / "people.csv"
        (batch,) = list(read_entity(member, "service_delivery"))
        assert batch.row_count == 1


def test_a_remote_location_is_read_from_the_members_cache(tmp_path: Path, memory: Any) -> None:
    memory.pipe("/drop/acme_trust/people.csv", b"Client ID\r\n1\r\n2\r\n")
    memory.pipe("/drop/acme_trust/sessions-2025-01.csv", b"Client,Date\r\n1,2025-01-02\r\n")
    memory.pipe("/drop/acme_trust/~$sessions-2025-02.csv", b"a lock file")
    memory.pipe("/drop/acme_trust/other.csv", b"Client,Date\r\n1,2020-01-01\r\n")
    member: Member = load_member(_write(tmp_path, _config("memory://drop/acme_trust/")))
    root = cache_root(tmp_path / "hub")
    states = sync_location(member, root)
    assert sorted(states) == ["people.csv", "sessions-2025-01.csv"]
    copy = root / ORG
    assert sorted(p.name for p in copy.iterdir()) == [
        MANIFEST,
        "people.csv",
        "sessions-2025-01.csv",
    ]
    assert member.resolve(Path("people.csv")) == (copy / "people.csv").resolve()
    (batch,) = list(read_entity(member, "person"))
    assert batch.row_count == 2
    # `hub check` reads the copy too, and names each file where the member keeps it.
    from connectors.spreadsheets import check_member

    report = check_member(member)
    assert [(t.file, t.rows_loaded) for t in report.tables] == [
        ("memory://drop/acme_trust/people.csv", 2),
        ("memory://drop/acme_trust/sessions-2025-01.csv", 1),
    ]

    # Unchanged at the location: nothing fetched again (the copy is not rewritten).
    mtime = (copy / "people.csv").stat().st_mtime_ns
    assert sync_location(member, root) == states
    assert (copy / "people.csv").stat().st_mtime_ns == mtime
    # A file gone from the location goes from the copy; a new one arrives.
    memory.rm("/drop/acme_trust/sessions-2025-01.csv")
    memory.pipe("/drop/acme_trust/sessions-2025-02.csv", b"Client,Date\r\n2,2025-02-02\r\n")
    assert sorted(sync_location(member, root)) == ["people.csv", "sessions-2025-02.csv"]
    assert not (copy / "sessions-2025-01.csv").exists()

    # A file over the size limit is never fetched; the load says why, naming the URL.
    memory.pipe("/drop/acme_trust/people.csv", b"Client ID\r\n" + b"1\r\n" * 600)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HUB_MAX_FILE_BYTES", "1000")
        with pytest.raises(SpreadsheetError) as caught:
            sync_location(member, root)
    assert "memory://drop/acme_trust/people.csv" in str(caught.value)
    assert "over the size limit of 1,000 bytes" in str(caught.value)
    # Missing: the error names the URL and the key to correct.
    memory.rm("/drop/acme_trust/people.csv")
    with pytest.raises(SpreadsheetError) as caught:
        sync_location(member, root)
    assert caught.value.path == "memory://drop/acme_trust/people.csv"
    assert "file not found" in caught.value.problem
    assert "connector.tables.person.file in acme_trust.yaml" in caught.value.fix


def test_a_missing_backend_package_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    member = load_member(_write(tmp_path, _config("s3://network-drop/acme_trust/")))
    monkeypatch.setitem(sys.modules, "s3fs", None)  # as if not installed: import fails
    with pytest.raises(SpreadsheetError) as caught:
        sync_location(member, cache_root(tmp_path / "hub"))
    assert "needs the package s3fs, which is not installed" in caught.value.problem
    assert "pip install s3fs" in caught.value.fix and "outcomes-hub[s3]" in caught.value.fix


def test_hub_check_explains_a_bad_location(tmp_path: Path) -> None:
    members = tmp_path / "members"
    _write(tmp_path, _config("http://files.example.org/acme_trust/"))
    env = hub_env(tmp_path, members)
    done = hub(["check", ORG], env)
    assert done.returncode == 1
    out = " ".join(done.stdout.split())
    assert "acme_trust.yaml" in out  # where
    assert "key 'connector.location': the protocol 'http(s)://' is not allowed" in out  # what
    assert "write a folder inside the member's data folder, or s3://bucket/prefix/" in out  # fix

    # Valid, but nothing at the location: the check names the URL and what to do.
    _write(tmp_path, _config("memory://drop/acme_trust/"))
    done = hub(["check", ORG], {**env, "HUB_TEST_MEMORY_LOCATIONS": "1"})
    assert done.returncode == 1
    out = " ".join(done.stdout.split())
    assert "member 'acme_trust', file memory://drop/acme_trust/people.csv" in out
    assert "person table: file not found" in out
    assert "put the file at memory://drop/acme_trust/people.csv" in out


def test_copying_stops_at_the_deadline_and_waits_for_another_copier(
    tmp_path: Path, memory: Any
) -> None:
    import time

    from filelock import FileLock

    from connectors.spreadsheets.remote import OutOfTime, SyncBusy

    memory.pipe("/drop/acme_trust/people.csv", b"Client ID\r\n1\r\n")
    memory.pipe("/drop/acme_trust/sessions-2025-01.csv", b"Client,Date\r\n1,2025-01-02\r\n")
    member = load_member(_write(tmp_path, _config("memory://drop/acme_trust/")))
    root = cache_root(tmp_path / "hub")
    # Past the deadline (a sensor tick's budget), nothing more is fetched; the next call
    # goes on.
    with pytest.raises(OutOfTime):
        sync_location(member, root, strict=False, deadline=time.monotonic() - 1)
    assert not (root / ORG / "people.csv").exists()
    # While another process copies this member's files (a load), the sensor does not wait.
    lock = FileLock(str(root / f".{ORG}.lock"))
    with lock, pytest.raises(SyncBusy):
        sync_location(member, root, wait=0.1)
    assert sorted(sync_location(member, root)) == ["people.csv", "sessions-2025-01.csv"]
