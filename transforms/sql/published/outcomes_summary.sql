-- outcomes_summary before disclosure control. Rows per quarter, area (a named district,
-- 'other', 'unknown' or 'all'), outcome area and outcome code (a code, or 'all' for the whole
-- outcome area). People are distinct hub person_keys, so a person helped by two members
-- counts once. The rows form a full grid (every area the quarter names times every outcome
-- area and code of the taxonomy), with zeros where nobody is counted: which rows exist must
-- never depend on a small count, or a missing row would publish a zero. organisations is
-- given only on 'all' area rows: for one district, whether it is 0 would say whether anyone
-- from there was counted, and it would be withheld almost everywhere.
WITH activity AS (
    SELECT period, kind, org_id, person_key, outcome_area, outcome_code, status, area
    FROM hub.published_activity
    UNION ALL
    SELECT period, kind, org_id, person_key, outcome_area, outcome_code, status, 'all' AS area
    FROM hub.published_activity
),
by_code AS (
    SELECT
        period,
        area,
        outcome_area,
        outcome_code,
        COUNT(DISTINCT org_id) AS organisations,
        COUNT(DISTINCT person_key) AS people_engaged,
        COUNT(DISTINCT CASE WHEN status = 'achieved' THEN person_key END) AS people_achieving
    FROM activity
    WHERE kind = 'outcome'
    GROUP BY period, area, outcome_area, outcome_code
),
by_area AS (
    SELECT
        period,
        area,
        outcome_area,
        COUNT(DISTINCT org_id) AS organisations,
        COUNT(DISTINCT person_key) AS people_engaged,
        COUNT(DISTINCT CASE WHEN kind = 'outcome' AND status = 'achieved' THEN person_key END)
            AS people_achieving,
        COUNT(CASE WHEN kind = 'engagement' THEN 1 END) AS engagements,
        COUNT(CASE WHEN kind = 'delivery' THEN 1 END) AS deliveries
    FROM activity
    GROUP BY period, area, outcome_area
),
areas AS (
    SELECT DISTINCT period, area FROM hub.published_activity
    UNION
    SELECT period, fixed.area
    FROM hub.period
    CROSS JOIN (VALUES ('all'), ('other'), ('unknown')) AS fixed(area)
),
outcome_areas AS (
    SELECT DISTINCT outcome_area FROM hub.outcome_taxonomy
    UNION
    SELECT DISTINCT outcome_area FROM hub.published_activity
),
code_grid AS (
    SELECT a.period, a.area, t.outcome_area, t.outcome_code
    FROM areas AS a
    CROSS JOIN hub.outcome_taxonomy AS t
),
area_grid AS (
    SELECT a.period, a.area, o.outcome_area
    FROM areas AS a
    CROSS JOIN outcome_areas AS o
)
SELECT
    g.period,
    g.area,
    g.outcome_area,
    g.outcome_code,
    CAST(CASE WHEN g.area = 'all' THEN COALESCE(c.organisations, 0) END AS BIGINT)
        AS organisations,
    CAST(COALESCE(c.people_engaged, 0) AS BIGINT) AS people_engaged,
    CAST(COALESCE(c.people_achieving, 0) AS BIGINT) AS people_achieving,
    CAST(NULL AS BIGINT) AS engagements,
    CAST(NULL AS BIGINT) AS deliveries
FROM code_grid AS g
LEFT JOIN by_code AS c
    ON c.period = g.period AND c.area = g.area AND c.outcome_area = g.outcome_area
    AND c.outcome_code = g.outcome_code
UNION ALL
SELECT
    g.period,
    g.area,
    g.outcome_area,
    'all' AS outcome_code,
    CAST(CASE WHEN g.area = 'all' THEN COALESCE(c.organisations, 0) END AS BIGINT),
    CAST(COALESCE(c.people_engaged, 0) AS BIGINT),
    CAST(COALESCE(c.people_achieving, 0) AS BIGINT),
    CAST(COALESCE(c.engagements, 0) AS BIGINT),
    CAST(COALESCE(c.deliveries, 0) AS BIGINT)
FROM area_grid AS g
LEFT JOIN by_area AS c
    ON c.period = g.period AND c.area = g.area AND c.outcome_area = g.outcome_area
ORDER BY 1, 2, 3, 4
