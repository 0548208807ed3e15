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


def _disclosure_check(name: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=dg.AssetKey(["published", name]),
        name=f"{name}_hides_small_counts",
        blocking=True,
        pool="warehouse",
        description=f"No count in published.{name} below the threshold is visible, and no "
        "hidden cell can be recovered from a total.",
    )
    def _check(hub: HubResource) -> dg.AssetCheckResult:
        from transforms.disclosure import SPECS, relation_violations
        from transforms.publish import compute_counts

        threshold = hub.settings().disclosure_threshold
        with hub.warehouse().connect() as session:
            published = session.arrow(f"SELECT * FROM published.{name}")
        original = getattr(compute_counts(hub.warehouse()), name)
        problems = relation_violations(published, SPECS[name], original, threshold=threshold)
        return dg.AssetCheckResult(
            passed=not problems, metadata={"problems": problems[:20], "threshold": threshold}
        )

    return _check


outcomes_summary_hides_small_counts = _disclosure_check("outcomes_summary")
cross_org_reach_hides_small_counts = _disclosure_check("cross_org_reach")
