"""Helpers for the spreadsheet connector tests: write real files and real member YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from connectors.members import Member, load_member

PERSON_COLUMNS = {
    "source_id": "Client ID",
    "given_name": "First name",
    "family_name": "Surname",
    "birth_date": "DOB",
    "phone": "Phone",
    "postcode": "Postcode",
    "consent_to_share": "Consent",
}


def write_text(
    path: Path, lines: list[str], encoding: str = "utf-8", newline: str = "\r\n"
) -> Path:
    """Write lines exactly as a spreadsheet program would (CRLF by default)."""
    path.write_bytes((newline.join(lines) + newline).encode(encoding))
    return path


def member(
    tmp_path: Path, tables: dict[str, dict[str, Any]], org_id: str = "acme_trust", **extra: Any
) -> Member:
    """Write members/<org_id>.yaml next to the data files and load it through the validator."""
    folder = tmp_path / "members"
    folder.mkdir(exist_ok=True)
    config: dict[str, Any] = {
        "name": "Acme Trust",
        "connector": {"kind": "spreadsheet", "tables": tables},
    }
    for key, value in extra.items():
        if key in ("date_order", "phone_region"):
            config["connector"][key] = value
        else:
            config[key] = value
    for table in tables.values():
        _into_member_folder(tmp_path, org_id, table)
    path = folder / f"{org_id}.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return load_member(path)


def _into_member_folder(tmp_path: Path, org_id: str, table: dict[str, Any]) -> None:
    """A member reads only files in a folder named after it (connectors.scope): move a file
    written at ``tmp_path`` into ``tmp_path/<org_id>/`` and point the table there. The old
    path becomes a link to it, so a test that rewrites the file still changes what is read."""
    file = Path(table["file"])
    if not file.is_absolute() or file.parent != tmp_path:
        return
    target = tmp_path / org_id / file.name
    target.parent.mkdir(exist_ok=True)
    if file.exists() and not file.is_symlink():
        file.replace(target)
    if not file.exists() and not file.is_symlink():
        file.symlink_to(target)
    table["file"] = str(target)


def person_table(
    file: Path, columns: dict[str, str] | None = None, **options: Any
) -> dict[str, Any]:
    """A person table entry pointing at ``file`` (absolute, so the YAML can live anywhere)."""
    return {"file": str(file), "columns": columns or PERSON_COLUMNS, **options}
