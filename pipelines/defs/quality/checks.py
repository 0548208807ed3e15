"""Quality checks that gate publication (Great Expectations suites, imported lazily).

Every check opens the DuckDB warehouse, so every check is in the ``warehouse`` pool like the
assets: under the daemon's multiprocess executor two checks opening the file at once failed
with "Could not set lock on file".
"""

import dagster as dg

from pipelines.lib.hub import HubResource

PERSON_LINK = dg.AssetKey(["hub", "person_link"])


@dg.asset_check(asset=PERSON_LINK, blocking=True, pool="warehouse")
def every_person_has_one_pseudonymous_key(hub: HubResource) -> dg.AssetCheckResult:
    """Each live canonical person record maps to exactly one well-formed person key."""
    from transforms.validation import validate_person_link

    with hub.warehouse().connect() as session:
        frame = session.arrow("SELECT * FROM hub.person_link").to_pandas()
        people = session.fetchall("SELECT COUNT(*) FROM canonical.person WHERE NOT is_deleted")
    outcome = validate_person_link(frame, people[0][0])
    return dg.AssetCheckResult(
        passed=outcome.success, metadata={"failed": outcome.failed, **outcome.details}
    )


@dg.asset_check(asset=PERSON_LINK, blocking=False, pool="warehouse")
def linked_people_are_well_formed(hub: HubResource) -> dg.AssetCheckResult:
    """The canonical people behind the links have ids, E.164 phones, clean emails/postcodes."""
    from transforms.validation import validate_people

    with hub.warehouse().connect() as session:
        frame = session.arrow(
            "SELECT org_id, source_id, phone, email, postcode, birth_date, consent_to_share "
            "FROM canonical.person WHERE NOT is_deleted"
        ).to_pandas()
    outcome = validate_people(frame)
    return dg.AssetCheckResult(
        passed=outcome.success,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"failed": outcome.failed, **outcome.details},
    )


DISCLOSURE_CHECKS = {
    name: dg.AssetCheckSpec(
        f"{name}_hides_small_counts",
        asset=dg.AssetKey(["published", name]),
        blocking=True,
        description=f"No count in published.{name} below the threshold is visible, and an "
        "integer-programming attack over every relation a reader can use (across all the "
        "published tables) cannot narrow any withheld count to a range narrower than the "
        "threshold.",
    )
    for name in ("outcomes_summary", "cross_org_reach", "organisation_summary")
}


@dg.multi_asset_check(specs=list(DISCLOSURE_CHECKS.values()), pool="warehouse")
def published_tables_resist_attack(hub: HubResource):
    """Attack the published tables as a reader would before any release is written.

    One audit covers all tables (their relations cross tables); each table's check fails
    with the cells that could be narrowed down, named by table and key, never by value.
    """
    from transforms.disclosure import audit_release
    from transforms.disclosure.history import earlier_releases, frozen
    from transforms.publish import release_meta, release_truth

    threshold = hub.settings().disclosure_threshold
    warehouse = hub.warehouse()
    with warehouse.connect() as session:
        published = {
            name: session.arrow(f"SELECT * FROM published.{name}") for name in DISCLOSURE_CHECKS
        }
    meta = release_meta(warehouse) or {}
    history = earlier_releases(warehouse, meta.get("revised", []), before=meta.get("version"))
    findings = audit_release(
        published, release_truth(warehouse), threshold=threshold, history=history
    )
    # Frozen quarters must repeat, unchanged, what the release that counted them published.
    carried = meta.get("carried", [])
    if carried:
        import pyarrow.compute as pc

        earlier, _ = frozen(warehouse, carried)
        for name, table in earlier.items():
            now = published[name].filter(
                pc.is_in(published[name].column("period"), table.column("period").unique())
            )
            if sorted(map(str, now.to_pylist())) != sorted(
                map(str, table.cast(now.schema).to_pylist())
            ):
                findings.problems.setdefault(name, []).append(
                    f"{name}: a frozen quarter's rows differ from the release that published them"
                )
    for name, spec in DISCLOSURE_CHECKS.items():
        problems = findings.problems.get(name, [])
        yield dg.AssetCheckResult(
            asset_key=spec.asset_key,
            check_name=spec.name,
            passed=not problems,
            metadata={
                "problems": problems[:20],
                "problem_count": len(problems),
                "withheld_cells_audited": findings.audited.get(name, 0),
                "solver_runs": findings.solves,
                "threshold": threshold,
            },
        )
