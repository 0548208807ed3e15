"""Column lineage from SQL text, the record lineage.json carries for readers without Dagster+."""

from __future__ import annotations

import pytest

from transforms import sql
from transforms.column_lineage import column_lineage
from transforms.errors import TransformError

REPRESENTATIVE = """
WITH people AS (
    SELECT l.person_key, p.postcode, p.org_id
    FROM hub.person_link AS l
    JOIN canonical.person AS p ON p.org_id = l.org_id AND p.source_id = l.source_id
),
events AS (
    SELECT e.person_source_id, e.org_id, e.start_date AS happened_on, 'engagement' AS kind
    FROM canonical.engagement AS e
    UNION ALL
    SELECT d.person_source_id, d.org_id, d.delivered_on, 'delivery'
    FROM canonical.service_delivery AS d
)
SELECT
    SPLIT_PART(pe.postcode, ' ', 1) AS area,
    ev.kind,
    COUNT(DISTINCT pe.person_key) AS people,
    COUNT(*) AS events,
    SUM(CASE WHEN ev.happened_on >= DATE '2025-01-01' THEN 1 ELSE 0 END) AS recent,
    MAX(ev.happened_on) AS last_seen,
    ROW_NUMBER() OVER (PARTITION BY ev.kind ORDER BY MAX(ev.happened_on)) AS rank_in_kind,
    'all' AS scope
FROM events AS ev
JOIN people AS pe ON pe.org_id = ev.org_id
GROUP BY 1, 2
"""


def test_representative_query() -> None:
    lineage = column_lineage(REPRESENTATIVE)
    assert list(lineage) == [
        "area",
        "kind",
        "people",
        "events",
        "recent",
        "last_seen",
        "rank_in_kind",
        "scope",
    ]
    assert lineage["area"] == ["canonical.person.postcode"]
    assert lineage["kind"] == []  # literals in both UNION ALL branches
    assert lineage["people"] == ["hub.person_link.person_key"]
    # COUNT(*) depends on the rows of every table feeding the join, through CTEs and UNION.
    assert lineage["events"] == [
        "canonical.engagement.*",
        "canonical.person.*",
        "canonical.service_delivery.*",
        "hub.person_link.*",
    ]
    both_dates = ["canonical.engagement.start_date", "canonical.service_delivery.delivered_on"]
    assert lineage["recent"] == both_dates  # CASE condition through the UNION ALL
    assert lineage["last_seen"] == both_dates
    assert set(both_dates) <= set(lineage["rank_in_kind"])  # window ORDER BY
    assert lineage["scope"] == []


def test_star_is_expanded_with_a_schema() -> None:
    query = "SELECT t.* FROM canonical.programme AS t"
    schema = {"canonical": {"programme": {"name": "TEXT", "outcome_area": "TEXT"}}}
    assert column_lineage(query, schema=schema) == {
        "name": ["canonical.programme.name"],
        "outcome_area": ["canonical.programme.outcome_area"],
    }


def test_published_models_trace_to_warehouse_columns() -> None:
    reach = column_lineage(sql.sql_text("published/cross_org_reach"))
    assert reach["served_by_2"] == ["hub.published_activity.org_id"]
    assert reach["people"] == ["hub.published_activity.*"]
    recoded = column_lineage(sql.sql_text("published/published_activity"))
    assert recoded["area"] == ["hub.activity.area", "hub.activity.person_key"]
    activity = column_lineage(sql.sql_text("published/activity"))
    assert activity["area"] == ["canonical.person.postcode"]
    assert activity["person_key"] == ["hub.person_link.person_key"]
    summary = column_lineage(sql.sql_text("published/outcomes_summary"))
    assert summary["people_achieving"] == [
        "hub.published_activity.kind",
        "hub.published_activity.person_key",
        "hub.published_activity.status",
    ]


def test_other_dialect_and_errors() -> None:
    lineage = column_lineage(
        'SELECT "o"."status" AS s FROM "canonical"."outcome" AS "o"', dialect="postgres"
    )
    assert lineage == {"s": ["canonical.outcome.status"]}
    with pytest.raises(TransformError):
        column_lineage("SELECT FROM WHERE (")
    with pytest.raises(TransformError, match="SELECT"):
        column_lineage("CREATE TABLE x (a INT)")
