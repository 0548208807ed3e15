"""Write a versioned release of the published dataset to a folder.

A release is what funders and other readers actually receive, so it is built to be safe and
self-explanatory without the hub:

- every table as CSV (for spreadsheets) and Parquet (for analysts), with exactly the columns
  of ``transforms.published_schema`` — any other column stops the release, so a personal
  column can never slip out, and a count-table value below the disclosure threshold stops it
  too (disclosure control was skipped);
- a Frictionless ``datapackage.json`` describing every field, validated with frictionless
  before the release is made visible;
- ``lineage.json`` (the caller's lineage record plus the version);
- ``index.html``, a self-contained page (no external scripts, styles or links) to browse it.

Files are written to a hidden staging folder and renamed into place only after validation,
so a half-written or invalid release is never visible, and a published version is never
overwritten. ``LATEST`` (a text file, portable where symlinks are not) names the newest.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import os
import re
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from transforms.published_schema import (
    NO_PERSONAL_DATA,
    PublishedTable,
    published_table,
    suppressed_flag,
)

DEFAULT_TITLE = "Outcomes Hub shared outcomes dataset"
LICENSE = {
    "name": "CC-BY-4.0",
    "title": "Creative Commons Attribution 4.0 International",
    "path": "https://creativecommons.org/licenses/by/4.0/",
}
HTML_MAX_ROWS = 5000
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


class ReleaseError(Exception):
    """A release could not be written; the message says what to fix."""


class ReleaseExistsError(ReleaseError, FileExistsError):
    """The version folder already exists; published versions are never overwritten."""


def _package_description(threshold: int) -> str:
    return (
        "Outcomes of the people helped by the member organisations of the network, counted "
        "across members by calendar quarter and postcode district. People are counted once "
        "however many members helped them (records are linked to pseudonymous hub person "
        "keys). A quarter names a postcode district only when at least "
        f"{threshold} people from it were counted; smaller districts are counted together as "
        "'other'. Disclosure control: any count of people, engagements, deliveries or "
        f"records below {threshold}, including 0, is withheld, and further counts are "
        "withheld wherever a reader could otherwise narrow a withheld count down, using "
        "every relation between the published figures (listed in disclosureControl.relations) "
        "; every release is attacked with an integer program before it is published, and is "
        f"refused unless each withheld count could still lie in a range at least {threshold} "
        "wide (a small one anywhere from 0 to at least the threshold). A withheld count is an "
        "empty cell and its <measure>_suppressed column is true; disclosureControl."
        "informationLoss says how much was withheld. Each table is also provided as Parquet "
        "with the same name. " + NO_PERSONAL_DATA
    )


def _check_version(version: str) -> None:
    if not _VERSION.fullmatch(version) or version in {"LATEST"} or ".." in version:
        raise ReleaseError(
            f"release version {version!r} is not a safe folder name (letters, digits, "
            "'.', '_', '-', '+'; not starting with a dot)"
        )


def _check_disclosed(schema: PublishedTable, table: pa.Table, threshold: int) -> None:
    """Refuse count tables that were not disclosure-controlled (with this threshold).

    ``organisations`` counts members, not people: it may be shown below the threshold (it is
    withheld with the people count beside it, which this check does cover)."""
    from transforms.disclosure.control import COMPANIONS

    for measure in schema.measures:
        if (schema.name, measure) in COMPANIONS:
            continue
        values = table.column(measure).to_pylist()
        flags = table.column(suppressed_flag(measure)).to_pylist()
        for value, flag in zip(values, flags, strict=True):
            if flag and value is not None:
                raise ReleaseError(
                    f"{schema.name}.{measure}: a value flagged as suppressed is not empty"
                )
            if value is not None and value < threshold:
                raise ReleaseError(  # the count itself is what must stay hidden: not shown
                    f"{schema.name}.{measure}: a published value is below the disclosure "
                    f"threshold {threshold}; apply transforms.disclosure first (or pass the "
                    "threshold it used)"
                )


# A spreadsheet opening a CSV treats a cell starting with one of these as a formula (or, for
# tab and carriage return, shifts it); text published from members' own labels (their
# names) must never run as one. Such cells get a leading apostrophe in the CSV (the OWASP
# advice); the Parquet files keep the text as it is.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_text(value: Any) -> str:
    """A CSV cell, with text that a spreadsheet would run as a formula neutralised."""
    text = _csv_cell(value)
    if isinstance(value, str) and text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
    return str(value)


def _write_csv(path: Path, table: pa.Table) -> None:
    columns = [table.column(name).to_pylist() for name in table.column_names]
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(table.column_names)
        for row in zip(*columns, strict=True):
            writer.writerow([_csv_text(v) for v in row])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _package_name(title: str) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", title.lower()).strip("-._")
    return name or "outcomes-hub"


def _datapackage(
    folder: Path,
    version: str,
    title: str,
    created: str,
    schemas: list[PublishedTable],
    threshold: int,
    held_back: list[dict[str, Any]] | None = None,
    disclosure: dict[str, Any] | None = None,
) -> dict[str, Any]:
    resources = []
    for schema in schemas:
        path = folder / f"{schema.name}.csv"
        resources.append(
            {
                "name": schema.name,
                "type": "table",
                "path": path.name,
                "scheme": "file",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "title": schema.title,
                "description": schema.description,
                "bytes": path.stat().st_size,
                "hash": f"sha256:{_sha256(path)}",
                "dialect": {"csv": {"delimiter": ",", "lineTerminator": "\n"}},
                "schema": schema.to_frictionless(),
            }
        )
    return {
        "name": _package_name(title),
        "title": title,
        "version": version,
        "created": created,
        "description": _package_description(threshold),
        "licenses": [LICENSE],
        "keywords": ["charity", "outcomes", "open data", "disclosure control"],
        # A custom property: members whose latest data could not be taken, so this release
        # counts their last good data (empty when every member is current).
        "heldBackMembers": held_back or [],
        # A custom property: how disclosure control was applied and what it cost.
        "disclosureControl": {"threshold": threshold, **(disclosure or {})},
        "resources": resources,
    }


def _held_back(tables: list[tuple[PublishedTable, pa.Table]]) -> list[dict[str, Any]]:
    """Held-back members as organisation_summary states them (its fixed-phrase reason only)."""
    for schema, table in tables:
        if schema.name != "organisation_summary":
            continue
        return [
            {
                "org_id": row["org_id"],
                "name": row["name"],
                "last_good_load": _csv_cell(row["last_good_load"]) or None,
                "reason": row["held_back_reason"],
            }
            for row in table.to_pylist()
            if row["status"] == "held_back"
        ]
    return []


def _check_has_data(tables: list[tuple[PublishedTable, pa.Table]]) -> None:
    """Refuse a release in which no member shows a record loaded (it would say nothing:
    every member loaded none, or fewer than the disclosure threshold, which is withheld)."""
    for schema, table in tables:
        if schema.name == "organisation_summary" and not any(
            (n or 0) > 0 for n in table.column("records_loaded").to_pylist()
        ):
            raise ReleaseError(
                "nothing to publish: no member has loaded data yet (organisation_summary "
                "shows no records loaded)"
            )


def _validate(descriptor_path: Path) -> list[str]:
    """Problems frictionless finds in the package (metadata and every row); empty if valid."""
    import frictionless

    report = frictionless.validate(str(descriptor_path))
    if report.valid:
        return []
    problems = [_problem("package", e) for e in report.errors]
    for task in report.tasks:
        problems.extend(_problem(task.name, e) for e in task.errors)
    return problems or ["the package does not validate (frictionless found no detail)"]


def _problem(where: str, error: Any) -> str:
    """Where and which rule, never the cell's value: frictionless's own message quotes the
    cell, and a cell that failed a check may be exactly what must not be shown (a name or an
    e-mail address in an area column, say)."""
    parts = [f"{where}: {error.type}"]
    field = getattr(error, "field_name", None)
    row = getattr(error, "row_number", None)
    if field:
        parts.append(f"field {field!r}")
    if row:
        parts.append(f"row {row}")
    note = getattr(error, "note", "")
    return ", ".join(parts) + (f" ({note})" if note else "")


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:72rem;padding:0 1rem;color:#1b1b1b;line-height:1.45}
h1{margin-bottom:.2rem}.meta{color:#555;margin-top:0}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f0f0;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.suppressed{background:#fff4d6;color:#7a5a00;font-style:italic;text-align:center}
td.na{color:#999;text-align:center}
.scroll{max-height:40rem;overflow:auto;border:1px solid #ddd;display:inline-block;max-width:100%}
.note{background:#f6f8fa;border-left:4px solid #888;padding:.5rem 1rem}
.held-back{background:#fff4d6;border-left:4px solid #b07d00;padding:.5rem 1rem}
code{background:#f3f3f3;padding:0 .2rem}
"""


def _html_cell(value: Any, *, suppressed: bool, is_count: bool) -> str:
    if suppressed:
        return '<td class="suppressed" title="withheld by disclosure control">suppressed</td>'
    if value is None:
        return '<td class="na" title="does not apply or not known">–</td>'
    cls = ' class="num"' if is_count else ""
    return f"<td{cls}>{html.escape(_csv_cell(value))}</td>"


def _html_table(schema: PublishedTable, table: pa.Table) -> str:
    flags = {suppressed_flag(m): m for m in schema.measures}
    shown = [f for f in schema.fields if f.name not in flags]
    rows = table.slice(0, HTML_MAX_ROWS).to_pylist()
    head = "".join(f"<th>{html.escape(f.name)}</th>" for f in shown)
    body = []
    for row in rows:
        cells = "".join(
            _html_cell(
                row[f.name],
                suppressed=bool(row.get(suppressed_flag(f.name))),
                is_count=f.type == "integer",
            )
            for f in shown
        )
        body.append(f"<tr>{cells}</tr>")
    more = ""
    if table.num_rows > HTML_MAX_ROWS:
        more = (
            f'<p class="note">Showing the first {HTML_MAX_ROWS} of {table.num_rows} rows; '
            "the CSV and Parquet files hold them all.</p>"
        )
    if not rows:
        return '<p class="note">This table has no rows in this release.</p>'
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>'
        + "\n".join(body)
        + f"</tbody></table></div>{more}"
    )


def _withheld_html(disclosure: dict[str, Any]) -> str:
    """The page's "What is withheld" section: the information lost per table, in words."""
    e = html.escape
    loss = disclosure.get("informationLoss") or {}
    if not loss:
        return ""
    rows = []
    for name, item in loss.items():
        people = item.get("peopleWithheldShare")
        rows.append(
            f"<tr><td><code>{e(name)}</code></td><td>{item['withheldCells']} of {item['cells']}"
            f" ({round(100 * item['withheldShare'])}%)</td><td>"
            + ("—" if people is None else f"about {round(100 * people)}%")
            + "</td></tr>"
        )
    threshold = disclosure.get("threshold")
    quarters = ""
    periods = disclosure.get("periods") or []
    if periods:
        words = {
            "new": "published for the first time",
            "carried": "repeated unchanged from release {v}",
            "revised": "revised: recounted with later data, and controlled together with "
            "the earlier release(s) {e}",
        }
        items = "".join(
            f"<li><code>{e(p['period'])}</code>: "
            + e(
                words.get(p["status"], p["status"]).format(
                    v=p.get("valuesFrom") or "", e=", ".join(p.get("earlierVersions") or [])
                )
            )
            + (" (provisional: the quarter had not ended)" if p.get("provisional") else "")
            + "</li>"
            for p in periods
        )
        pending = disclosure.get("pendingRevisions") or []
        open_quarters = disclosure.get("openQuartersNotPublished") or []
        quarters = (
            f"<h3>Quarters in this release</h3><ul>{items}</ul>"
            + (
                "<p>Counts have changed since publication for "
                + e(", ".join(pending))
                + "; they are repeated unchanged until a revision is published.</p>"
                if pending
                else ""
            )
            + (
                "<p>Not yet published (the quarter has not ended): "
                + e(", ".join(open_quarters))
                + ".</p>"
                if open_quarters
                else ""
            )
            + f"<p>{e(disclosure.get('revisionPolicy') or '')}</p>"
        )
    return (
        '<section id="withheld"><h2>What is withheld, and why</h2>'
        f"<p>Counts below {e(str(threshold))} (including 0) are withheld, because a small "
        "count can identify someone; so are further counts wherever the published figures "
        "would let a reader work a withheld one out. Before this release was published, an "
        "integer program tried to narrow every withheld count down using every relation "
        "between the figures; each could still lie in a range at least "
        f"{e(str(threshold))} wide.</p>"
        "<table><thead><tr><th>table</th><th>counts withheld</th>"
        "<th>share of people in withheld counts</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>{quarters}</section>"
    )


def _index_html(
    title: str,
    version: str,
    created: str,
    description: str,
    tables: list[tuple[PublishedTable, pa.Table]],
    held_back: list[dict[str, Any]] | None = None,
    disclosure: dict[str, Any] | None = None,
) -> str:
    e = html.escape
    withheld = _withheld_html(disclosure or {})
    held = ""
    if held_back:
        items = "".join(
            f"<li>{e(m['name'])} (<code>{e(m['org_id'])}</code>): {e(m['reason'] or '')}; "
            f"this release counts its data loaded {e(m['last_good_load'] or 'never')}</li>"
            for m in held_back
        )
        held = (
            '<div class="held-back" id="held-back"><p><strong>Not every member\'s data is '
            "current.</strong> The latest data of these members could not be taken, so this "
            "release counts their last good data (see <code>status</code> in "
            f'<a href="#organisation_summary">organisation_summary</a>):</p><ul>{items}</ul>'
            "</div>"
        )
    toc = "".join(
        f'<li><a href="#{e(s.name)}">{e(s.title)}</a> (<code>{e(s.name)}</code>, '
        f"{t.num_rows} rows)</li>"
        for s, t in tables
    )
    sections = []
    for schema, table in tables:
        fields = "".join(
            f"<tr><td><code>{e(f.name)}</code></td><td>{e(f.type)}</td>"
            f"<td>{e(f.description)}</td></tr>"
            for f in schema.fields
        )
        controlled = ""
        if schema.disclosure_controlled:
            controlled = (
                '<p class="note">Cells marked <em>suppressed</em> are withheld by disclosure '
                "control; in the files they are empty and the matching "
                "<code>&lt;measure&gt;_suppressed</code> column is true (those flag columns "
                "are not repeated below). A dash means the measure does not apply.</p>"
            )
        sections.append(
            f'<section id="{e(schema.name)}"><h2>{e(schema.title)} '
            f"<small>(<code>{e(schema.name)}</code>)</small></h2>"
            f"<p>{e(schema.description)}</p>"
            f'<p>Download: <a href="{e(schema.name)}.csv">{e(schema.name)}.csv</a> · '
            f'<a href="{e(schema.name)}.parquet">{e(schema.name)}.parquet</a></p>'
            f"<p>Primary key: <code>{e(', '.join(schema.primary_key))}</code></p>"
            "<details><summary>Fields</summary><table><thead><tr><th>field</th><th>type</th>"
            f"<th>description</th></tr></thead><tbody>{fields}</tbody></table></details>"
            f"{controlled}{_html_table(schema, table)}</section>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} — {e(version)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{e(title)}</h1>"
        f'<p class="meta">Version <strong>{e(version)}</strong> · created {e(created)} · '
        f"licence {e(LICENSE['title'])} ({e(LICENSE['name'])})</p>"
        f"{held}<p>{e(description)}</p>"
        f"<h2>Contents</h2><ul>{toc}</ul>{withheld}"
        '<p>Metadata: <a href="datapackage.json">datapackage.json</a> (Frictionless Data '
        'Package: every field typed and described) · <a href="lineage.json">lineage.json</a> '
        "(the SQL, source columns, loads, run and code version behind each table)</p>"
        + "".join(sections)
        + "</body></html>\n"
    )


def write_release(
    root: Path,
    version: str,
    tables: dict[str, pa.Table],
    lineage: dict[str, Any],
    *,
    title: str = DEFAULT_TITLE,
    disclosure_threshold: int = 5,
    disclosure: dict[str, Any] | None = None,
) -> Path:
    """Write ``root/<version>/`` and point ``root/LATEST`` at it; return the folder.

    ``tables`` maps published table names (any of ``PUBLISHED_SCHEMAS``) to Arrow tables,
    the count tables already disclosure-controlled with ``disclosure_threshold``. Raises
    ``SchemaError`` naming a column that is not in the published schema,
    ``ReleaseExistsError`` if the version exists, and ``ReleaseError`` if the package does
    not validate (listing every problem) or a count was not controlled. ``disclosure``
    (the audit's summary: relations used, information lost per table) goes into
    ``datapackage.json`` as ``disclosureControl`` and onto the page.
    """
    _check_version(version)
    if not tables:
        raise ReleaseError("a release needs at least one table")
    conformed: list[tuple[PublishedTable, pa.Table]] = []
    for name, table in tables.items():
        schema = published_table(name)
        table = schema.conform(table)  # the guard: raises on any column outside the schema
        if schema.disclosure_controlled:
            _check_disclosed(schema, table, disclosure_threshold)
        conformed.append((schema, table))
    _check_has_data(conformed)
    held_back = _held_back(conformed)

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / version
    if final.exists():
        raise ReleaseExistsError(f"release {version} already exists at {final}; not overwriting")

    created = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    remove_stale_staging(root)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{version}.pid{os.getpid()}.", suffix=STAGING_SUFFIX, dir=root)
    )
    try:
        for schema, table in conformed:
            pq.write_table(table, staging / f"{schema.name}.parquet")
            _write_csv(staging / f"{schema.name}.csv", table)
        package = _datapackage(
            staging,
            version,
            title,
            created,
            [s for s, _ in conformed],
            disclosure_threshold,
            held_back,
            disclosure,
        )
        descriptor = staging / "datapackage.json"
        descriptor.write_text(
            json.dumps(package, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        (staging / "lineage.json").write_text(
            json.dumps({**lineage, "version": version}, indent=2, ensure_ascii=False, default=str)
            + "\n",
            encoding="utf-8",
        )
        (staging / "index.html").write_text(
            _index_html(
                title,
                version,
                created,
                package["description"],
                conformed,
                held_back,
                package["disclosureControl"],
            ),
            encoding="utf-8",
        )
        problems = _validate(descriptor)
        if problems:
            raise ReleaseError(
                f"release {version} is not a valid data package:\n- " + "\n- ".join(problems)
            )
        staging.chmod(0o755)  # mkdtemp makes it private; a release is meant to be read
        if final.exists():
            raise ReleaseExistsError(f"release {version} appeared at {final} while writing")
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    point_latest(root, version)
    return final


def point_latest(root: Path, version: str) -> None:
    """Make ``root/LATEST`` name ``version`` (atomically; used again by a retried release
    whose folder was renamed into place before a crash left LATEST behind)."""
    _check_version(version)
    if not (Path(root) / version).is_dir():
        raise ReleaseError(f"release {version} does not exist in {root}")
    pointer = Path(root) / f".LATEST.{os.getpid()}.tmp"  # per writer: never shared
    pointer.write_text(version + "\n", encoding="utf-8")
    os.replace(pointer, Path(root) / "LATEST")


STAGING_SUFFIX = ".partial"
_STAGING_PID = re.compile(r"\.pid([0-9]+)\.")
# A staging folder without a writer's pid (older releases) is stale after this long.
_STAGING_MAX_AGE_SECONDS = 3600


def remove_stale_staging(root: Path) -> list[Path]:
    """Remove half-written release folders whose writer is gone; return what was removed.

    A crash while publishing leaves ``.<version>.pid<N>.<random>.partial``; it was never
    visible as a release (LATEST never named it), so removing it loses nothing. A folder
    whose writer is still alive is left alone (another process may be publishing).
    """
    from transforms.processes import process_alive

    root = Path(root)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for entry in root.iterdir():
        if not (entry.name.startswith(".") and entry.name.endswith(STAGING_SUFFIX)):
            continue
        if not entry.is_dir() or entry.is_symlink():
            continue
        found = _STAGING_PID.search(entry.name)
        if found:
            stale = not process_alive(int(found.group(1)), entry.stat().st_mtime)
        else:
            stale = time.time() - entry.stat().st_mtime > _STAGING_MAX_AGE_SECONDS
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def latest_release(root: Path) -> Path | None:
    """The folder ``root/LATEST`` names, or None if there is no release yet."""
    pointer = Path(root) / "LATEST"
    if not pointer.exists():
        return None
    return Path(root) / pointer.read_text(encoding="utf-8").strip()
