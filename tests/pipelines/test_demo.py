"""The demo, materialised through the real asset graph, against the independent oracle.

`hub demo` runs exactly this sequence (pipelines.lib.runner.refresh) on the bundled members;
tests/oracle.py counts the same figures from sample_data/truth.json in plain Python.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from connectors.members import normalise_label
from pipelines.lib.demo import demo_sandboxes
from pipelines.lib.members import registry
from pipelines.lib.runner import refresh
from pipelines.settings import HubSettings
from tests import oracle

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
THRESHOLD = 5


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> HubSettings:
    home = tmp_path_factory.mktemp("demo")
    settings = HubSettings(
        home=home,
        members_dir=ROOT / "members",
        warehouse_path=home / "warehouse.duckdb",
        pipelines_dir=home / "dlt",
        releases_dir=home / "releases",
        disclosure_threshold=THRESHOLD,
    )
    with demo_sandboxes(registry().members) as served:
        assert served == ["southbank_advice", "harbour_wellbeing"]
        results = refresh(settings, sorted(registry().members), dg.DagsterInstance.ephemeral())
    failures = [f"{r.name}: {r.error}" for r in results if not r.success]
    assert not failures, failures
    return settings


def _table(settings: HubSettings, sql: str) -> list[dict]:
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        cur = con.execute(sql)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        con.close()


def _compare(published: list[dict], expected: dict[tuple, dict], key: tuple[str, ...]) -> None:
    got = {tuple(r[k] for k in key): r for r in published}
    assert set(got) == set(expected)
    for k, want in expected.items():
        row = got[k]
        for measure, value in want.items():
            if measure == "organisations":  # members, not people: shown below 5 too
                if row[f"{measure}_suppressed"]:
                    assert row[measure] is None and row["people_engaged_suppressed"], k
                else:
                    assert row[measure] == value, (k, measure)
            elif value is None:
                assert row[measure] is None and not row[f"{measure}_suppressed"], (k, measure)
            elif row[f"{measure}_suppressed"]:
                assert row[measure] is None, (k, measure)
            else:
                assert row[measure] == value and value >= THRESHOLD, (k, measure, value)


def test_outcomes_summary_matches_oracle(demo: HubSettings) -> None:
    published = _table(demo, "SELECT * FROM published.outcomes_summary")
    expected = oracle.expected_outcomes_summary()
    _compare(published, expected, ("period", "area", "outcome_area", "outcome_code"))
    visible = [r for r in published if r["people_achieving"] is not None]
    assert len(visible) > 50  # the demo is big enough to say something


def test_demo_release_resists_the_attack(demo: HubSettings) -> None:
    """The attack of tests/transforms/test_disclosure.py on the demo release's CSV files:
    an integer program over every relation a reader can use narrows no withheld count to a
    range narrower than the threshold (round one's release gave 16 cells away exactly)."""
    from transforms.disclosure import read_release_csvs, reader_attack

    version = (demo.releases_dir / "LATEST").read_text(encoding="utf-8").strip()
    tables = read_release_csvs(demo.releases_dir / version)
    ranges = reader_attack(tables, threshold=THRESHOLD)
    assert len(ranges) > 900
    narrow = [label for label, (lo, hi) in ranges.items() if hi - lo < THRESHOLD]
    assert not narrow
    package = json.loads(
        (demo.releases_dir / version / "datapackage.json").read_text(encoding="utf-8")
    )
    loss = package["disclosureControl"]["informationLoss"]
    assert set(loss) == {"outcomes_summary", "cross_org_reach", "organisation_summary"}
    assert 0 < loss["outcomes_summary"]["peopleWithheldShare"] < 0.5
    assert [p["status"] for p in package["disclosureControl"]["periods"]] == ["new"] * 4
    page = (demo.releases_dir / version / "index.html").read_text(encoding="utf-8")
    assert "What is withheld, and why" in page and "Quarters in this release" in page
    assert {r["name"] for r in package["disclosureControl"]["relations"]} >= {
        "area_total",
        "code_bounds",
        "reach_covers_outcome_areas",
    }


def test_cross_org_reach_matches_oracle(demo: HubSettings) -> None:
    published = _table(demo, "SELECT * FROM published.cross_org_reach")
    _compare(published, oracle.expected_cross_org_reach(), ("period", "area"))


def test_people_and_links_match_oracle(demo: HubSettings) -> None:
    rows = _table(demo, "SELECT COUNT(DISTINCT person_key) AS people FROM hub.person_link")
    assert rows[0]["people"] == oracle.expected_people_count()
    clusters = oracle.expected_person_clusters()
    links = _table(demo, "SELECT org_id, source_id, person_key FROM hub.person_link")
    by_key: dict[str, set] = {}
    for link in links:
        by_key.setdefault(link["person_key"], set()).add(
            clusters[(link["org_id"], link["source_id"])]
        )
    assert all(len(v) == 1 for v in by_key.values())  # no two oracle people merged


def test_quarantine_matches_oracle(demo: HubSettings) -> None:
    rows = _table(
        demo,
        "SELECT org_id, entity, source_row, severity, column_name FROM quarantine.rejected_rows",
    )
    got = {
        (
            r["org_id"],
            r["entity"],
            r["source_row"],
            r["severity"],
            normalise_label(r["column_name"]),
        )
        for r in rows
    }
    # Every reason names the column by the member's header (at load and at mapping alike).
    want = {
        (q["org_id"], q["entity"], q["row"], q["severity"], normalise_label(q["column"]))
        for q in oracle.expected_quarantine()
    }
    assert got == want


def test_release_is_written_and_valid(demo: HubSettings) -> None:
    from frictionless import validate

    version = (demo.releases_dir / "LATEST").read_text(encoding="utf-8").strip()
    folder = demo.releases_dir / version
    report = validate(str(folder / "datapackage.json"))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])
    lineage = json.loads((folder / "lineage.json").read_text(encoding="utf-8"))
    assert set(lineage["loads"]) == set(registry().members)
    html = (folder / "index.html").read_text(encoding="utf-8")
    assert "outcomes_summary" in html
    people = _table(
        demo,
        "SELECT source_id, given_name || ' ' || family_name AS name, email FROM canonical.person",
    )
    published = "".join(p.read_text(encoding="utf-8") for p in folder.glob("*.csv")) + html
    for person in people:  # no personal data or source id in any published file
        assert person["name"] not in published
        assert not person["email"] or person["email"] not in published
        if not person["source_id"].isdigit():  # CiviCRM ids are small numbers, like counts
            assert f",{person['source_id']}," not in published
    package = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
    columns = {f["name"] for r in package["resources"] for f in r["schema"]["fields"]}
    assert not {c for c in columns if "source" in c or (c.endswith("_id") and c != "org_id")}
    assert "person_key" not in columns


def test_every_asset_run_emits_openlineage_events(demo: HubSettings) -> None:
    lines = (demo.home / "openlineage" / "events.jsonl").read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]
    by_job: dict[str, list[str]] = {}
    for event in events:
        by_job.setdefault(event["job"]["name"], []).append(event["eventType"])
    assert set(by_job) == {
        "spreadsheet_raw",
        "salesforce_raw",
        "civicrm_raw",
        "canonical_model",
        "hub__person_link",
        "published_tables",
        "published__release",
    }
    for states in by_job.values():
        assert states.count("START") == states.count("COMPLETE") and "FAIL" not in states
    published = next(
        e for e in events if e["job"]["name"] == "published_tables" and e["eventType"] == "COMPLETE"
    )
    assert {d["name"] for d in published["inputs"]} >= {"hub.person_link", "canonical.outcome"}
    assert {d["name"] for d in published["outputs"]} == {
        "published.outcomes_summary",
        "published.cross_org_reach",
        "published.organisation_summary",
    }
    raw = next(e for e in events if e["job"]["name"] == "spreadsheet_raw")
    assert all(d["namespace"] == "file" for d in raw["inputs"])
