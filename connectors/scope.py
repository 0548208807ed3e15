"""What a member's config may reach: only its own secrets, and CRMs over https.

Why: many members share one hub and each writes its own YAML file, so a member file is
untrusted input. Without a scope, ``api_key: {env: ANOTHER_MEMBERS_SECRET}`` or
``site_key: {file: <another member's key file>}`` plus a ``site_url`` of the member's
choosing sends another member's secret to any server. So:

- a member's environment variables must start with a prefix derived from its id
  (``HUB_<ORG_ID>_`` by default; the hub operator may change the template with
  ``HUB_SECRET_ENV_PREFIX``, e.g. ``CHARITY_{ORG}_``, never the member);
- a member's key files must lie, after following symlinks, inside its own secrets folder
  (``$HUB_SECRETS_DIR/<org_id>/``, default ``$HUB_HOME/secrets/<org_id>/``);
- CRM URLs must be ``https`` (plain ``http`` only to a loopback address, for sandboxes and
  tests), without a user name, password or secret-looking query parameter (those would be
  written into logs and lineage events).

Problems are messages naming the key and the fix; they never repeat a secret or a URL's
credentials.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

PREFIX_TEMPLATE_ENV = "HUB_SECRET_ENV_PREFIX"
SECRETS_DIR_ENV = "HUB_SECRETS_DIR"
DEFAULT_PREFIX_TEMPLATE = "HUB_{ORG}_"
_SECRET_WORDS = re.compile(
    r"key|secret|token|pass|pwd|auth|sig|credential|session|bearer", re.IGNORECASE
)


def env_prefix(org_id: str) -> str:
    """The prefix every environment variable a member names must start with."""
    template = os.environ.get(PREFIX_TEMPLATE_ENV) or DEFAULT_PREFIX_TEMPLATE
    return template.replace("{ORG}", org_id.upper())


def secrets_dir(org_id: str) -> Path:
    """The member's own secrets folder (resolved; it need not exist yet)."""
    root = os.environ.get(SECRETS_DIR_ENV)
    base = Path(root) if root else Path(os.environ.get("HUB_HOME", ".hub")) / "secrets"
    return (base / org_id).resolve()


# Settings the hub itself reads. A member whose prefix happens to cover one (member "max"
# and HUB_MAX_FILE_BYTES, "test" and HUB_TEST_POSTGRES) must still not read it.
HUB_SETTINGS = frozenset(
    {
        "HUB_DATA_DIR",
        "HUB_DISCLOSURE_THRESHOLD",
        "HUB_DLT_DIR",
        "HUB_EVENTS_INBOX",
        "HUB_EVENTS_MAX_BODY",
        "HUB_EVENTS_MAX_CONNECTIONS",
        "HUB_EVENTS_TOLERANCE_SECONDS",
        "HUB_HOME",
        "HUB_MAX_CELLS",
        "HUB_MAX_FIELD_CHARS",
        "HUB_MAX_FILE_BYTES",
        "HUB_MAX_UNCOMPRESSED_BYTES",
        "HUB_MEMBERS_DIR",
        "HUB_REFRESH_CRON",
        "HUB_REFRESH_TIMEZONE",
        "HUB_RELEASES_DIR",
        "HUB_SECRETS_DIR",
        "HUB_SECRET_ENV_PREFIX",
        "HUB_TAXONOMY_EXTRA",
        "HUB_TELEMETRY",
        "HUB_TEST_MEMORY_LOCATIONS",
        "HUB_TEST_POSTGRES",
        "HUB_WAREHOUSE",
        "HUB_WAREHOUSE_LOCK_SECONDS",
    }
)


def env_problem(org_id: str, name: str, other_ids: Iterable[str] = ()) -> str | None:
    """Why environment variable ``name`` is not one of ``org_id``'s secrets, or None.

    Prefixes nest: member ``north``'s ``HUB_NORTH_`` also covers member ``north_aid``'s
    ``HUB_NORTH_AID_API_KEY``. So a name that falls under the longer prefix of another
    member (``other_ids``: every member file beside this one) is that member's, not this
    one's; and the hub's own settings are nobody's.
    """
    prefix = env_prefix(org_id)
    if not name.startswith(prefix) or len(name) == len(prefix):
        return (
            f"environment variable {name} is not one of this member's secrets: a member may "
            f"only use variables starting with {prefix} (for example {prefix}API_KEY); "
            "rename it and export it under that name"
        )
    if name in HUB_SETTINGS:
        return (
            f"environment variable {name} is a setting of the hub itself, not a secret of "
            f"this member; use another name starting with {prefix}"
        )
    for other in other_ids:
        theirs = env_prefix(other)
        if other != org_id and len(theirs) > len(prefix) and name.startswith(theirs):
            return (
                f"environment variable {name} belongs to member {other} (its variables start "
                f"with {theirs}); use a name starting with {prefix} that does not start "
                f"with {theirs}"
            )
    return None


def file_problem(org_id: str, path: Path) -> str | None:
    """Why key file ``path`` is outside ``org_id``'s secrets folder, or None.

    The path is resolved following symlinks, so a link from inside the folder to a file
    elsewhere is refused too."""
    folder = secrets_dir(org_id)
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return f"the key file {path.name} cannot be resolved (a symlink loop?); replace it"
    if not resolved.is_relative_to(folder):
        return (
            f"key files must be inside this member's secrets folder {folder} (after following "
            f"symlinks); move {path.name} there and name it relative to that folder"
        )
    return None


def _loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_problems(url: str) -> list[str]:
    """Why ``url`` may not be used to reach a member's CRM (empty when it may).

    The messages never repeat the URL: it may carry credentials."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return ["the URL cannot be read; write it like https://crm.example.org"]
    problems: list[str] = []
    if parts.scheme == "http":
        if not _loopback(host):
            problems.append(
                "the URL must start with https:// (plain http:// is allowed only for a "
                "loopback address such as 127.0.0.1, for sandboxes and tests)"
            )
    elif parts.scheme != "https":
        problems.append("the URL must start with https://")
    if not host:
        problems.append("the URL has no host name; write it like https://crm.example.org")
    if parts.username is not None or parts.password is not None:
        problems.append(
            "the URL carries a user name or password; remove it (credentials belong in the "
            "secret references, e.g. api_key: {env: …})"
        )
    secret_params = sorted(
        {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
        | ({parts.query} if parts.query and "=" not in parts.query else set())
    )
    if any(_SECRET_WORDS.search(name) for name in secret_params):
        problems.append(
            "the URL has a query parameter that looks like a secret (key, token, password…); "
            "remove it (credentials belong in the secret references)"
        )
    if parts.fragment:
        problems.append("the URL has a #fragment; remove it")
    return problems


DATA_DIR_ENV = "HUB_DATA_DIR"


def data_root(members_dir: Path) -> Path:
    """Where members' data files live: ``$HUB_DATA_DIR``, else the folder above the members
    folder (the network's folder). Resolved."""
    root = os.environ.get(DATA_DIR_ENV)
    return (Path(root) if root else members_dir.parent).resolve()


def member_data_folders(
    org_id: str,
    root: Path,
    keep: tuple[Path, ...] = (),
    other_ids: Iterable[str] = (),
    max_depth: int = 5,
) -> list[Path]:
    """The folders under ``root`` that a member may read: every folder named after it.

    Why: :func:`data_file_problem` lets a member read files in any folder named after it
    under the data root, so a departing member's files are exactly those folders. The walk
    follows no symlink, goes at most ``max_depth`` levels down and never enters a folder it
    has matched. A match that holds one of ``keep`` (the members folder, the hub's home) or
    a folder named after another member (``other_ids``: member ``data`` leaving must not
    take ``data/beta/``) is not taken whole: the walk looks inside it instead.
    """
    found: list[Path] = []
    kept = [k.resolve() for k in keep]
    others = set(other_ids) - {org_id}
    base_depth = len(root.parts)

    def holds_another(folder: Path) -> bool:
        if any(k.is_relative_to(folder) for k in kept):
            return True
        for current, dirs, _files in os.walk(folder, followlinks=False):
            if others.intersection(dirs):
                return True
            if len(Path(current).parts) - base_depth >= max_depth:
                dirs.clear()
        return False

    for current, dirs, _files in os.walk(root, followlinks=False):
        here = Path(current)
        for name in list(dirs):
            path = here / name
            if name == org_id and not holds_another(path):
                found.append(path)
                dirs.remove(name)
        if len(here.parts) - base_depth >= max_depth - 1:
            dirs.clear()
    return sorted(found)


def data_file_problem(
    org_id: str, path: Path, root: Path, other_ids: Iterable[str] = ()
) -> str | None:
    """Why data file ``path`` is not the member's to read, or None.

    A member's files must lie, after following symlinks, in a folder named after the member
    somewhere under the data root (``<root>/…/<org_id>/…``): so ``../``, absolute paths
    elsewhere, another member's folder and links out of the member's folder are refused.
    Folder names nest too: member ``data`` must not read ``<root>/data/beta/people.csv``,
    which is in member ``beta``'s folder. So the deepest folder on the path named after any
    member (``other_ids``: the member files beside this one) must be this member's.
    """
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        return f"{path.name} cannot be resolved (a symlink loop?); replace it with the file"
    if not resolved.is_relative_to(root):
        return (
            f"{path.name} is outside the members' data folder {root} (after following "
            f"symlinks); put it in {root / org_id} and name it relative to the member file"
        )
    folders = resolved.relative_to(root).parts[:-1]
    if org_id not in folders:
        return (
            f"{path.name} is not in a folder named {org_id}: a member reads only its own "
            f"folder under {root} (such as {root / org_id}); move the file there"
        )
    others = set(other_ids) - {org_id}
    deeper = [f for f in folders[len(folders) - folders[::-1].index(org_id) :] if f in others]
    if deeper:
        return (
            f"{path.name} is in member {deeper[-1]}'s folder: a member reads only its own "
            f"folder under {root} (such as {root / org_id}); move the file there"
        )
    return None
