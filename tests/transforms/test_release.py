"""The release writer: files, Frictionless validity, guards, the HTML page and LATEST."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import frictionless
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from transforms import release as release_module
from transforms.published_schema import (
    PUBLISHED_SCHEMAS,
    SchemaError,
    published_table,
    suppressed_flag,
)
from transforms.release import (
    ReleaseError,
    ReleaseExistsError,
    latest_release,
    write_release,
)

LINEAGE = {"run_id": "run-1", "code_version": "abc123", "tables": {"cross_org_reach": {}}}


def _withheld(name: str, table: pa.Table, also: set[tuple[str, str]] = frozenset()) -> pa.Table:
    """``table`` as the writer receives it: counts below 5 and the ``also`` cells (area,
    measure) withheld, flags set. The writer only checks the result; how disclosure control
    chooses cells is tested in tests/transforms/test_disclosure.py."""
    schema = published_table(name)
    out = table
    for measure in schema.measures:
        values = table.column(measure).to_pylist()
        areas = table.column("area").to_pylist() if "area" in table.column_names else []
        hide = [
            v is not None and (v < 5 or (areas[i] if areas else None, measure) in also)
            for i, v in enumerate(values)
        ]
        column = pa.array([None if h else v for v, h in zip(values, hide, strict=True)], pa.int64())
        out = out.set_column(out.column_names.index(measure), measure, column)
        out = out.append_column(suppressed_flag(measure), pa.array(hide, pa.bool_()))
    return schema.conform(out)


def _tables(*, beta_held_back: bool = False) -> dict[str, pa.Table]:
    reach = pa.Table.from_pylist(
        [
            {
                "period": "2025-Q1",
                "area": "all",
                "people": 10,
                "served_by_1": 7,
                "served_by_2": 3,
                "served_by_3_plus": 0,
            },
            {
                "period": "2025-Q1",
                "area": "M14",
                "people": 8,
                "served_by_1": 5,
                "served_by_2": 3,
                "served_by_3_plus": 0,
            },
            {
                "period": "2025-Q1",
                "area": "M15",
                "people": 2,
                "served_by_1": 2,
                "served_by_2": 0,
                "served_by_3_plus": 0,
            },
        ]
    )
    outcomes = pa.Table.from_pylist(
        [
            {
                "period": "2025-Q1",
                "area": area,
                "outcome_area": "housing",
                "outcome_code": code,
                "organisations": 1,
                "people_engaged": n,
                "people_achieving": a,
                "engagements": n if code == "all" else None,
                "deliveries": 0 if code == "all" else None,
            }
            for area, n, a in (("all", 17, 12), ("M14", 9, 7), ("unknown", 8, 5))
            for code in ("all", "tenancy_sustained")
        ]
    )
    orgs = pa.table(
        {
            "org_id": ["alpha", "beta"],
            "name": ["Alpha Housing", "Beta <Money> & Advice"],
            "records_loaded": [120, 80],
            "records_quarantined": [2, 0],
            "last_refreshed": pa.array(
                [datetime(2025, 3, 31, 12, 30, tzinfo=UTC), None], pa.timestamp("us", tz="UTC")
            ),
            "status": ["current", "held_back" if beta_held_back else "current"],
            "last_good_load": pa.array(
                [datetime(2025, 3, 31, 12, 30, tzinfo=UTC), datetime(2025, 2, 1, 9, 0)],
                pa.timestamp("us"),
            ),
            "held_back_reason": [
                None,
                "its last load failed on 2025-03-31" if beta_held_back else None,
            ],
        }
    )
    return {
        "outcomes_summary": _withheld("outcomes_summary", outcomes),
        "cross_org_reach": _withheld(
            "cross_org_reach", reach, {("all", "served_by_1"), ("M14", "people")}
        ),
        "organisation_summary": _withheld("organisation_summary", orgs),
    }


@pytest.fixture
def release(tmp_path: Path) -> Path:
    return write_release(tmp_path / "releases", "2025.04.01-1", _tables(), LINEAGE)


def test_release_has_every_file_and_latest(release: Path) -> None:
    names = {p.name for p in release.iterdir()}
    for table in PUBLISHED_SCHEMAS:
        assert {f"{table}.csv", f"{table}.parquet"} <= names
    assert {"datapackage.json", "lineage.json", "index.html"} <= names
    root = release.parent
    assert (root / "LATEST").read_text(encoding="utf-8").strip() == "2025.04.01-1"
    assert latest_release(root) == release
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no staging left
    lineage = json.loads((release / "lineage.json").read_text(encoding="utf-8"))
    assert lineage == {**LINEAGE, "version": "2025.04.01-1"}


def test_datapackage_is_valid_and_documented(release: Path) -> None:
    report = frictionless.validate(str(release / "datapackage.json"))
    assert report.valid, report.to_summary()
    package = json.loads((release / "datapackage.json").read_text(encoding="utf-8"))
    assert package["version"] == "2025.04.01-1" and package["created"]
    assert package["licenses"][0]["name"] == "CC-BY-4.0"
    assert "disclosure" in package["description"].lower()
    reach = next(r for r in package["resources"] if r["name"] == "cross_org_reach")
    assert reach["path"] == "cross_org_reach.csv"
    assert reach["schema"]["primaryKey"] == ["period", "area"]
    assert reach["schema"]["missingValues"] == [""]
    types = {f["name"]: f["type"] for f in reach["schema"]["fields"]}
    assert types["people"] == "integer" and types["people_suppressed"] == "boolean"
    assert all(f["description"] for r in package["resources"] for f in r["schema"]["fields"])


def test_frictionless_cli_accepts_the_package(release: Path) -> None:
    cli = Path(sys.executable).parent / "frictionless"
    if not cli.exists():
        cli_path = shutil.which("frictionless")
        if cli_path is None:
            pytest.skip("frictionless CLI is not installed")
        cli = Path(cli_path)
    done = subprocess.run(
        [str(cli), "validate", "datapackage.json"],
        cwd=release,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_suppressed_cells_are_empty_in_csv_and_null_in_parquet(release: Path) -> None:
    with (release / "cross_org_reach.csv").open(encoding="utf-8", newline="") as fh:
        rows = {row["area"]: row for row in csv.DictReader(fh)}
    assert rows["all"]["people"] == "10" and rows["all"]["people_suppressed"] == "false"
    assert rows["all"]["served_by_1"] == "" and rows["all"]["served_by_1_suppressed"] == "true"
    assert rows["M15"]["people"] == "" and rows["M15"]["people_suppressed"] == "true"

    parquet = pq.read_table(release / "cross_org_reach.parquet")
    assert parquet.schema == PUBLISHED_SCHEMAS["cross_org_reach"].arrow_schema()
    by_area = {r["area"]: r for r in parquet.to_pylist()}
    assert by_area["all"]["served_by_1"] is None and by_area["all"]["served_by_1_suppressed"]
    assert by_area["M14"]["people"] is None and by_area["all"]["people"] == 10

    outcomes = pq.read_table(release / "outcomes_summary.parquet").to_pylist()
    code_row = next(r for r in outcomes if r["outcome_code"] != "all")
    assert code_row["engagements"] is None and code_row["engagements_suppressed"] is False
    orgs = (release / "organisation_summary.csv").read_text(encoding="utf-8")
    assert "2025-03-31T12:30:00Z" in orgs


def test_refuses_to_overwrite_a_version(release: Path) -> None:
    before = (release / "datapackage.json").read_bytes()
    with pytest.raises(ReleaseExistsError, match="already exists"):
        write_release(release.parent, release.name, _tables(), LINEAGE)
    assert (release / "datapackage.json").read_bytes() == before


def test_latest_moves_to_the_newest_release(release: Path) -> None:
    newer = write_release(release.parent, "2025.04.02-1", _tables(), LINEAGE)
    assert latest_release(release.parent) == newer
    assert not (release.parent / "LATEST").is_symlink()


def test_unknown_column_is_refused_by_name(tmp_path: Path) -> None:
    tables = _tables()
    reach = tables["cross_org_reach"]
    tables["cross_org_reach"] = reach.append_column("given_name", pa.array(["x"] * reach.num_rows))
    with pytest.raises(SchemaError, match="given_name"):
        write_release(tmp_path, "v1", tables, LINEAGE)
    assert not (tmp_path / "v1").exists() and not (tmp_path / "LATEST").exists()


def test_unknown_table_and_uncontrolled_counts_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="person"):
        write_release(tmp_path, "v1", {"person": pa.table({"x": [1]})}, LINEAGE)
    raw = pa.table(
        {
            "period": ["2025-Q1"],
            "area": ["all"],
            "people": [3],
            "served_by_1": [3],
            "served_by_2": [0],
            "served_by_3_plus": [0],
            "people_suppressed": [False],
            "served_by_1_suppressed": [False],
            "served_by_2_suppressed": [False],
            "served_by_3_plus_suppressed": [False],
        }
    )
    with pytest.raises(ReleaseError, match="below the disclosure threshold"):
        write_release(tmp_path, "v1", {"cross_org_reach": raw}, LINEAGE)


def test_bad_version_name_is_refused(tmp_path: Path) -> None:
    for version in ("../escape", "", ".hidden", "a/b", "LATEST"):
        with pytest.raises(ReleaseError, match="not a safe folder name"):
            write_release(tmp_path, version, _tables(), LINEAGE)


def test_invalid_package_is_not_published(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = release_module._write_csv

    def corrupt(path: Path, table: pa.Table) -> None:
        real(path, table)
        if path.name == "cross_org_reach.csv":
            text = path.read_text(encoding="utf-8").replace("2025-Q1,all,10", "2025-Q1,all,ten")
            path.write_text(text, encoding="utf-8")

    monkeypatch.setattr(release_module, "_write_csv", corrupt)
    with pytest.raises(ReleaseError, match="not a valid data package") as err:
        write_release(tmp_path, "v1", _tables(), LINEAGE)
    assert "cross_org_reach" in str(err.value)
    assert not (tmp_path / "v1").exists() and not (tmp_path / "LATEST").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".v1")]


def test_html_page_is_self_contained_and_shows_the_tables(release: Path) -> None:
    page = (release / "index.html").read_text(encoding="utf-8")
    assert "Outcomes Hub shared outcomes dataset" in page and "2025.04.01-1" in page
    for table, schema in PUBLISHED_SCHEMAS.items():
        assert f'id="{table}"' in page
        assert f'href="{table}.csv"' in page and f'href="{table}.parquet"' in page
        for field in schema.fields:
            assert field.name in page
    assert ">suppressed</td>" in page
    assert '<td class="num">10</td>' in page  # a shown count
    assert "Beta &lt;Money&gt; &amp; Advice" in page  # escaped
    assert not re.search(r"(https?:)?//", page.replace("<!DOCTYPE html>", ""))
    assert "<script" not in page and "<link" not in page


def test_held_back_members_are_named_in_the_package_and_on_the_page(tmp_path: Path) -> None:
    folder = write_release(tmp_path, "v1", _tables(beta_held_back=True), LINEAGE)
    report = frictionless.validate(str(folder / "datapackage.json"))
    assert report.valid, report.to_summary()
    package = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
    assert package["heldBackMembers"] == [
        {
            "org_id": "beta",
            "name": "Beta <Money> & Advice",
            "last_good_load": "2025-02-01T09:00:00Z",
            "reason": "its last load failed on 2025-03-31",
        }
    ]
    with (folder / "organisation_summary.csv").open(encoding="utf-8", newline="") as fh:
        rows = {row["org_id"]: row for row in csv.DictReader(fh)}
    assert rows["beta"]["status"] == "held_back"
    assert rows["beta"]["last_good_load"] == "2025-02-01T09:00:00Z"
    assert rows["alpha"]["status"] == "current" and rows["alpha"]["held_back_reason"] == ""
    page = (folder / "index.html").read_text(encoding="utf-8")
    note = page[page.index('id="held-back"') : page.index("<h2>Contents</h2>")]
    assert "Not every member" in note and "Beta &lt;Money&gt; &amp; Advice" in note
    assert "its last load failed on 2025-03-31" in note and "2025-02-01T09:00:00Z" in note
    assert "Alpha" not in note


def test_no_note_when_every_member_is_current(release: Path) -> None:
    package = json.loads((release / "datapackage.json").read_text(encoding="utf-8"))
    assert package["heldBackMembers"] == []
    assert 'id="held-back"' not in (release / "index.html").read_text(encoding="utf-8")


def test_a_reason_other_than_the_fixed_phrases_is_not_published(tmp_path: Path) -> None:
    tables = _tables(beta_held_back=True)
    orgs = tables["organisation_summary"]
    reasons = pa.array([None, "beta: /srv/beta/people.csv not found"])
    tables["organisation_summary"] = orgs.set_column(
        orgs.column_names.index("held_back_reason"), "held_back_reason", reasons
    )
    with pytest.raises(ReleaseError, match="not a valid data package"):
        write_release(tmp_path, "v1", tables, LINEAGE)
    assert not (tmp_path / "v1").exists() and not (tmp_path / "LATEST").exists()


def test_a_release_without_any_loaded_record_is_refused(tmp_path: Path) -> None:
    tables = _tables()
    orgs = tables["organisation_summary"].drop_columns(
        [c for c in tables["organisation_summary"].column_names if c.endswith("_suppressed")]
    )
    orgs = orgs.set_column(
        orgs.column_names.index("records_loaded"), "records_loaded", pa.array([0, 0])
    )
    tables["organisation_summary"] = _withheld("organisation_summary", orgs)
    with pytest.raises(ReleaseError, match="nothing to publish"):
        write_release(tmp_path, "v1", tables, LINEAGE)
    assert not (tmp_path / "v1").exists() and not (tmp_path / "LATEST").exists()


def test_stale_staging_folders_go_and_a_live_writers_stays(tmp_path: Path) -> None:
    """A crash while publishing leaves a hidden staging folder: it is removed once its writer
    is gone, never while the writer (another process publishing) is alive."""
    import os

    from transforms.release import remove_stale_staging

    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = tmp_path / f".2026.01.01-000000.pid{int(done.stdout)}.abc.partial"
    live = tmp_path / f".2026.01.01-000001.pid{os.getpid()}.def.partial"
    old_unmarked = tmp_path / ".2025.01.01-000000.xyz.partial"
    young_unmarked = tmp_path / ".2026.01.01-000002.xyz.partial"
    release = tmp_path / "2026.01.01-000000"
    for folder in (dead, live, old_unmarked, young_unmarked, release):
        folder.mkdir()
        (folder / "outcomes_summary.csv").write_text("period\n", encoding="utf-8")
    a_day_ago = datetime.now(UTC).timestamp() - 86400
    os.utime(old_unmarked, (a_day_ago, a_day_ago))

    removed = remove_stale_staging(tmp_path)

    assert sorted(p.name for p in removed) == sorted([dead.name, old_unmarked.name])
    assert live.exists() and young_unmarked.exists() and release.exists()
    assert not dead.exists() and not old_unmarked.exists()


def test_member_text_cannot_run_as_a_spreadsheet_formula(tmp_path: Path) -> None:
    """A member's name is published text: in the CSV a leading =, +, -, @, tab or CR is
    neutralised with an apostrophe (the Parquet file keeps the text as it is)."""
    tables = _tables()
    names = ['=HYPERLINK("https://evil.example","Click")', "-2+3"]
    tables["organisation_summary"] = tables["organisation_summary"].set_column(
        1, "name", pa.array(names)
    )
    folder = write_release(tmp_path / "releases", "2025.04.01-1", tables, LINEAGE)
    with (folder / "organisation_summary.csv").open(encoding="utf-8", newline="") as fh:
        published = [row["name"] for row in csv.DictReader(fh)]
    assert published == ["'" + name for name in names]
    parquet = pq.read_table(folder / "organisation_summary.parquet")
    assert parquet.column("name").to_pylist() == names
    assert frictionless.validate(str(folder / "datapackage.json")).valid


def test_a_refused_release_never_repeats_the_offending_value(tmp_path: Path) -> None:
    """An area that is not a district (here an e-mail address) stops the release; the
    error names the table, field, row and rule, not the value."""
    tables = _tables()
    outcomes = tables["outcomes_summary"]
    areas = outcomes.column("area").to_pylist()
    areas[2] = "jo.bloggs@example.org"
    tables["outcomes_summary"] = outcomes.set_column(
        outcomes.column_names.index("area"), "area", pa.array(areas)
    )
    with pytest.raises(ReleaseError) as refused:
        write_release(tmp_path / "releases", "2025.04.01-1", tables, LINEAGE)
    said = str(refused.value)
    assert "jo.bloggs" not in said and "example.org" not in said
    assert "outcomes_summary: constraint-error, field 'area', row 4" in said
    assert not (tmp_path / "releases" / "LATEST").exists()


def test_an_uncontrolled_small_count_is_refused_without_showing_it(tmp_path: Path) -> None:
    tables = _tables()
    reach = tables["cross_org_reach"]
    people = reach.column("people").to_pylist()
    people[0] = 3
    tables["cross_org_reach"] = reach.set_column(
        reach.column_names.index("people"), "people", pa.array(people, pa.int64())
    )
    with pytest.raises(ReleaseError, match="a published value is below") as refused:
        write_release(tmp_path / "releases", "2025.04.01-1", tables, LINEAGE)
    assert "3" not in str(refused.value).replace("threshold 5", "")


def test_latest_can_be_pointed_again_at_a_written_release(release: Path) -> None:
    """A crash between renaming a release into place and moving LATEST: the retried
    release run finds the folder and points LATEST at it."""
    from transforms.release import point_latest

    root = release.parent
    newer = write_release(root, "2025.04.02-1", _tables(), LINEAGE)
    (root / "LATEST").write_text(release.name + "\n", encoding="utf-8")  # left behind
    point_latest(root, newer.name)
    assert latest_release(root) == newer
    with pytest.raises(ReleaseError, match="does not exist"):
        point_latest(root, "2099.01.01-1")
