"""Where a spreadsheet member's files live: its data folder, or an object-store URL.

A member may keep its exports in a bucket (``connector.location: s3://bucket/prefix/``) and
name its tables' files relative to it. The location is written by the member, so it is
untrusted input, like every other key of a member file:

- only these protocols: a local folder (a path or ``file://`` URL) inside the member's own
  data folder, ``s3://`` (``s3a``), ``gs://`` (``gcs``), ``az://`` (``abfs``, ``abfss``);
  never ``http(s)://``, ``ftp://``, ``ssh://`` or another fsspec protocol that could reach
  the hub's own network or files;
- no credentials in the URL (user, password, query string); they are given only as secret
  references to the member's own environment variables or key files
  (``connector.location_options``), or come from the environment's default credential
  chain (instance role, ``AWS_*`` variables…). Because the hub's default credentials are
  shared by every member, a location read with them must have a folder named after the
  member in its path (``s3://drop/<org_id>/``), as local files must; and an ``endpoint_url``
  (S3-compatible stores) is taken only with the member's own keys, so the hub's credentials
  are never sent to a server the member chose.

This module does no I/O when it validates; :func:`open_location` builds the filesystem
(the cloud packages are optional extras, named in the error when missing).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from connectors.scope import data_file_problem, url_problems

MAX_LOCATION_CHARS = 1000
# Protocol -> the fsspec family it belongs to (the options it takes, the package it needs).
REMOTE_PROTOCOLS: dict[str, str] = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
}
PACKAGES = {"s3": "s3fs", "gcs": "gcsfs", "azure": "adlfs"}
EXTRAS = {"s3": "s3", "gcs": "gcs", "azure": "azure"}
# Set by the hub operator (never a member) to let tests use fsspec's in-process
# ``memory://`` filesystem as a remote location.
MEMORY_LOCATIONS_ENV = "HUB_TEST_MEMORY_LOCATIONS"

SECRET, PLAIN, URL = "secret", "plain", "url"
# The options each family takes from connector.location_options, and their kind: a secret
# must be a reference ({env: …} or {file: …}); a plain value is written out.
OPTIONS: dict[str, dict[str, str]] = {
    "s3": {"key": SECRET, "secret": SECRET, "token": SECRET, "region": PLAIN, "endpoint_url": URL},
    "gcs": {"token": SECRET, "project": PLAIN},
    "azure": {
        "account_name": PLAIN,
        "account_key": SECRET,
        "sas_token": SECRET,
        "connection_string": SECRET,
    },
    "memory": {},
}
# Options that are the member's own credentials: with none of them, the location is read
# with the environment's default credential chain.
CREDENTIALS = {"key", "secret", "token", "account_key", "sas_token", "connection_string"}
_AZURE_HOSTS = (".dfs.core.windows.net", ".blob.core.windows.net")
_GLOB = re.compile(r"[*?\[\]]")

KEY = "connector.location"


@dataclass(frozen=True)
class Location:
    """A parsed location: a local ``folder``, or a remote ``url`` of a ``family``."""

    text: str
    folder: Path | None = None  # local: the resolved folder
    protocol: str | None = None  # remote: s3, gs, az, memory...
    family: str | None = None  # remote: s3, gcs, azure, memory
    root: str | None = None  # remote: bucket/prefix, without protocol, no trailing '/'

    @property
    def remote(self) -> bool:
        return self.folder is None

    def url(self, relative: str = "") -> str:
        """The URL of a file (or folder) relative to the location, as the member reads it."""
        assert self.root is not None
        tail = f"/{relative}" if relative else "/"
        return f"{self.protocol}://{self.root}{tail}"

    def path(self, relative: str = "") -> str:
        """The fsspec path (no protocol) of a file relative to the location."""
        assert self.root is not None
        return f"{self.root}/{relative}" if relative else self.root


def _allowed_remote() -> dict[str, str]:
    allowed = dict(REMOTE_PROTOCOLS)
    if os.environ.get(MEMORY_LOCATIONS_ENV) == "1":
        allowed["memory"] = "memory"
    return allowed


def _fix() -> str:
    return (
        "write a folder inside the member's data folder, or s3://bucket/prefix/, "
        "gs://bucket/prefix/ or az://container/prefix/"
    )


def parse_location(text: str, base_dir: Path) -> Location:
    """Parse ``text`` (already validated, see :func:`location_problems`)."""
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in ("", "file") or (len(scheme) == 1 and text[1:2] == ":"):
        raw = unquote(parts.path) if scheme == "file" else text
        folder = Path(raw).expanduser()
        folder = folder if folder.is_absolute() else base_dir / folder
        return Location(text=text, folder=folder.resolve())
    # Validation decided whether the protocol is allowed; parsing only names its family.
    family = {**REMOTE_PROTOCOLS, "memory": "memory"}.get(scheme, scheme)
    netloc = parts.netloc
    path = parts.path.strip("/")
    root = f"{netloc}/{path}" if path else netloc
    return Location(text=text, protocol=scheme, family=family, root=root)


def location_problems(
    text: str,
    org_id: str,
    base_dir: Path,
    data_root: Path,
    options: Mapping[str, Any],
    other_ids: Iterable[str] = (),
) -> list[str]:
    """Why ``text`` (with its ``options``) may not be a member's location; empty when it may.

    Messages name the key and the fix and never repeat an option's value.
    """
    # A secret written out is reported whatever else is wrong: the file must not keep it.
    problems = [
        f"key '{KEY}_options.{name}': secrets must not be written in the file; use "
        f"'{name}: {{env: SOME_VARIABLE}}' and export SOME_VARIABLE"
        for name, value in options.items()
        if name in CREDENTIALS and isinstance(value, str)
    ]
    if len(text) > MAX_LOCATION_CHARS:
        return [*problems, f"key '{KEY}': over {MAX_LOCATION_CHARS} characters; {_fix()}"]
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text) or not text.strip():
        return [*problems, f"key '{KEY}': empty or holds control characters; {_fix()}"]
    try:
        parts = urlsplit(text)
    except ValueError:
        return [*problems, f"key '{KEY}': cannot be read as a folder or URL; {_fix()}"]
    scheme = parts.scheme.lower()
    allowed = _allowed_remote()
    local = scheme in ("", "file") or (len(scheme) == 1 and text[1:2] == ":")
    if not local and scheme not in allowed:
        shown = "http(s)" if scheme in ("http", "https") else scheme
        return [
            *problems,
            f"key '{KEY}': the protocol '{shown}://' is not allowed (the hub reads member "
            f"files only from the member's own folder, S3, Google Cloud Storage or Azure); "
            f"{_fix()}",
        ]
    family = "local" if local else allowed[scheme]
    if parts.query or parts.fragment:
        problems.append(
            f"key '{KEY}': remove the '?…' or '#…' part (credentials belong in "
            f"connector.location_options as {{env: …}} references)"
        )
    if local:
        if scheme == "file" and parts.netloc not in ("", "localhost"):
            problems.append(f"key '{KEY}': a file:// URL names no host; write file:///path/")
        if options:
            problems.append(f"key '{KEY}_options': a local folder takes no options; remove them")
        if problems:
            return problems
        folder = parse_location(text, base_dir).folder
        assert folder is not None
        probe = folder / "file.csv"
        if problem := data_file_problem(org_id, probe, data_root, other_ids):
            problems.append(
                f"key '{KEY}': the folder {folder} is not this member's own: a member reads "
                f"only folders named {org_id} under {data_root} (such as {data_root / org_id}); "
                "move the files there and point location at it"
                + (" (a symlink loop?)" if "cannot be resolved" in problem else "")
            )
        return problems
    problems += _remote_problems(parts, scheme, family, org_id, options, other_ids)
    return problems


def _remote_problems(
    parts: Any,
    scheme: str,
    family: str,
    org_id: str,
    options: Mapping[str, Any],
    other_ids: Iterable[str],
) -> list[str]:
    problems: list[str] = []
    netloc = parts.netloc
    if "@" in netloc or ":" in netloc:
        user, _, host = netloc.rpartition("@")
        azure_form = (
            family == "azure"
            and user
            and ":" not in user
            and ":" not in host
            and host.lower().endswith(_AZURE_HOSTS)
        )
        if not azure_form:
            problems.append(
                f"key '{KEY}': the URL carries a user name, password or port; remove it "
                "(credentials belong in connector.location_options as {env: …} references)"
            )
    if not netloc:
        problems.append(
            f"key '{KEY}': no bucket or container; write it like {scheme}://bucket/prefix/"
        )
    segments = [s for s in parts.path.split("/") if s]
    if any(s in (".", "..") for s in segments):
        problems.append(f"key '{KEY}': '.' and '..' are not allowed in the path; name it in full")
    if _GLOB.search(parts.path) or _GLOB.search(netloc):
        problems.append(
            f"key '{KEY}': wildcards (* ? [ ]) are not allowed in the location; put the "
            "pattern in connector.tables.<table>.file"
        )
    allowed = OPTIONS[family]
    for name, value in options.items():
        kind = allowed.get(name)
        if kind is None:
            listing = ", ".join(sorted(allowed)) or "none"
            problems.append(
                f"key '{KEY}_options.{name}': not an option of {scheme}:// locations; "
                f"options are: {listing}"
            )
        elif kind == SECRET and isinstance(value, str):
            continue  # reported above
        elif kind != SECRET and not isinstance(value, str):
            problems.append(f"key '{KEY}_options.{name}': write the value itself (not a secret)")
        elif kind == URL:
            problems.extend(f"key '{KEY}_options.{name}': {p}" for p in url_problems(value))
    own_credentials = any(name in CREDENTIALS for name in options)
    if "endpoint_url" in options and not own_credentials:
        problems.append(
            f"key '{KEY}_options.endpoint_url': an endpoint needs the member's own keys "
            "(key and secret as {env: …} references): the hub's default credentials are "
            "never sent to a server a member names"
        )
    if family == "gcs" and "token" in options and getattr(options["token"], "env", None):
        problems.append(
            f"key '{KEY}_options.token': give the service account's key file "
            "({file: key.json} in the member's secrets folder), not a variable"
        )
    if not own_credentials and family != "memory":
        folders = [unquote(s) for s in segments]
        others = set(other_ids) - {org_id}
        if org_id not in folders:
            problems.append(
                f"key '{KEY}': read with the hub's default credentials (no key in "
                f"connector.location_options), the path must have a folder named {org_id} "
                f"(such as {scheme}://{netloc or 'bucket'}/{org_id}/), so no member reaches "
                "another's files; move the files there, or give the member's own keys"
            )
        elif deeper := [
            f for f in folders[len(folders) - folders[::-1].index(org_id) :] if f in others
        ]:
            problems.append(
                f"key '{KEY}': the path is in member {deeper[-1]}'s folder; a member reads "
                f"only its own ({scheme}://{netloc}/…/{org_id}/)"
            )
    return problems


def relative_file_problem(file: PurePosixPath | Path) -> str | None:
    """Why a table's ``file`` cannot be named under a remote location, or None."""
    text = file.as_posix()
    if file.is_absolute() or text.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", text):
        return "with connector.location set, name the file relative to it (people.csv)"
    if any(p in ("..", ".") for p in PurePosixPath(text).parts) or "\\" in text:
        return "'..', '.' and '\\' are not allowed; name the file relative to the location"
    if "://" in text:
        return "name the file relative to connector.location, not as a URL"
    return None


class LocationError(Exception):
    """A location cannot be opened: its package is missing, or it cannot be reached."""

    def __init__(self, problem: str, fix: str) -> None:
        self.problem, self.fix = problem, fix
        super().__init__(f"{problem}. Fix: {fix}")


def storage_options(location: Location, options: Mapping[str, Any]) -> dict[str, Any]:
    """fsspec keyword arguments from the member's options, secrets read now (at run time)."""
    kwargs: dict[str, Any] = {}
    for name, value in options.items():
        if OPTIONS.get(location.family or "", {}).get(name) == SECRET:
            if location.family == "gcs" and name == "token":
                kwargs["token"] = str(value.checked_file())
            else:
                kwargs[name] = value.resolve()
        elif name == "region":
            kwargs.setdefault("client_kwargs", {})["region_name"] = value
        else:
            kwargs[name] = value
    return kwargs


def open_location(location: Location, options: Mapping[str, Any]) -> Any:
    """The fsspec filesystem for a remote location (no I/O beyond what its class does)."""
    import fsspec

    assert location.family is not None and location.protocol is not None
    kwargs = storage_options(location, options)
    # A fresh instance: fsspec caches filesystems by arguments, and a listing cache would hide
    # a file dropped since the last tick.
    try:
        return fsspec.filesystem(location.protocol, skip_instance_cache=True, **kwargs)
    except ImportError as err:
        package = PACKAGES.get(location.family, str(err))
        extra = EXTRAS.get(location.family, location.family)
        raise LocationError(
            f"reading {location.protocol}:// locations needs the package {package}, which is "
            "not installed",
            f"install it in the hub's environment (pip install {package}, or "
            f"pip install 'outcomes-hub[{extra}]')",
        ) from None
