"""Fingerprints that tell whether a member's table needs loading again.

A spreadsheet is a full snapshot, loaded with ``replace``. Reloading an unchanged file is
wasted work and, worse, new load ids for identical rows; so each resource stores the
fingerprint of what it loaded (file bytes + the config that shapes the rows + the parser
version) in dlt resource state, and the caller runs only the resources whose fingerprint
moved. The state travels with the data into the destination, so a wiped warehouse or a
fresh pipelines folder means "load everything" rather than "skip everything".
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from connectors.errors import SpreadsheetError
from connectors.members import Member, is_glob
from connectors.spreadsheets.reading import check_file, table_files, table_path

# Bump when parsing changes what rows a file produces, so every member reloads once.
PARSER_VERSION = "2"
SOURCE_NAME = "spreadsheet"
STATE_KEY = "fingerprint"
FILES_KEY = "files"  # a table of several files: file name -> fingerprint, as last loaded


def resource_name(entity: str) -> str:
    """dlt resource (and raw table) name for a canonical entity."""
    return f"spreadsheet__{entity}"


def _digest(parts: dict[str, Any], file_hash: str | None = None) -> str:
    text = json.dumps(
        {**parts, "file": file_hash, "parser": PARSER_VERSION}, sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_sha256(member: Member, entity: str, path: Path | None = None) -> str:
    """sha256 of the file's bytes; SpreadsheetError if it cannot be read.

    The file passes the reader's checks first (inside the member's folder after following
    links, a regular file, within the size limits): hashing a link swapped to /dev/zero, or
    a named pipe, would otherwise never end.
    """
    path = path or table_path(member, entity)
    check_file(member, entity, path)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1024 * 1024):
                digest.update(chunk)
    except FileNotFoundError:
        raise SpreadsheetError(
            member.org_id,
            str(path),
            f"{entity} table: file not found",
            f"put the file at {path}, or correct connector.tables.{entity}.file in "
            f"{member.config_path.name}",
        ) from None
    except OSError as err:
        raise SpreadsheetError(
            member.org_id,
            str(path),
            f"{entity} table: cannot read the file ({err.strerror})",
            "let the hub's user read the file, or close the program that has it locked",
        ) from None
    return digest.hexdigest()


def _table_parts(member: Member, entity: str) -> dict[str, Any]:
    conn = member.connector
    parts: dict[str, Any] = {
        "entity": entity,
        "table": conn.tables[entity].model_dump(mode="json"),
        "date_order": conn.date_order,
        "phone_region": conn.phone_region,
        "decimal_separator": conn.decimal_separator,
        "null_values": list(conn.null_values),
    }
    if entity == "person":
        parts["sharing"] = member.sharing.model_dump(mode="json")
    return parts


def file_fingerprints(
    member: Member, entity: str, files: list[Path] | None = None
) -> dict[str, str]:
    """File name -> fingerprint of each file of a table of several files: each changes
    alone when its bytes change, and all of them when a setting that shapes rows does."""
    parts = _table_parts(member, entity)
    return {
        path.name: _digest({**parts, "name": path.name}, file_sha256(member, entity, path))
        for path in (table_files(member, entity) if files is None else files)
    }


def files_fingerprint(member: Member, entity: str, prints: dict[str, str]) -> str:
    """The table's fingerprint from its files' fingerprints (moves when any file does)."""
    return _digest({**_table_parts(member, entity), "files": prints})


def table_fingerprint(member: Member, entity: str) -> str:
    """Fingerprint of one entity table: its file bytes and every setting that shapes rows."""
    if is_glob(member.connector.tables[entity].file):
        return files_fingerprint(member, entity, file_fingerprints(member, entity))
    return _digest(_table_parts(member, entity), file_sha256(member, entity))


def programme_fingerprint(member: Member) -> str:
    """Fingerprint of the programme list, which comes from the YAML mappings alone."""
    return _digest({"entity": "programme", "programmes": member.mappings.programmes})


def current_fingerprints(member: Member) -> dict[str, str]:
    """Resource name -> fingerprint for every resource the member's source would have."""
    prints = {
        resource_name(entity): table_fingerprint(member, entity)
        for entity in member.connector.tables
    }
    prints[resource_name("programme")] = programme_fingerprint(member)
    return prints


def stored_fingerprints(state: dict[str, Any]) -> dict[str, str]:
    """Resource name -> fingerprint recorded in a pipeline's state by earlier loads."""
    resources = state.get("sources", {}).get(SOURCE_NAME, {}).get("resources", {})
    return {name: res.get(STATE_KEY) for name, res in resources.items() if res.get(STATE_KEY)}
