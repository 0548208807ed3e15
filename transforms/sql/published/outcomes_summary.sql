-- outcomes_summary before disclosure control. Rows per quarter, area (a district, or 'all'),
-- outcome area and outcome code (a code, or 'all' for the whole area). People are distinct
-- hub person_keys, so a person helped by two members counts once.
WITH activity AS (
    SELECT period, kind, org_id, person_key, outcome_area, outcome_code, status, area
    FROM hub.activity
    UNION ALL
    SELECT period, kind, org_id, person_key, outcome_area, outcome_code, status, 'all' AS area
    FROM hub.activity
),
by_code AS (
    SELECT
        period,
        area,
        outcome_area,
        outcome_code,
        COUNT(DISTINCT org_id) AS organisations,
        COUNT(DISTINCT person_key) AS people_engaged,
        COUNT(DISTINCT CASE WHEN status = 'achieved' THEN person_key END) AS people_achieving,
        CAST(NULL AS BIGINT) AS engagements,
        CAST(NULL AS BIGINT) AS deliveries
    FROM activity
    WHERE kind = 'outcome'
    GROUP BY period, area, outcome_area, outcome_code
),
by_area AS (
    SELECT
        period,
        area,
        outcome_area,
        'all' AS outcome_code,
        COUNT(DISTINCT org_id) AS organisations,
        COUNT(DISTINCT person_key) AS people_engaged,
        COUNT(DISTINCT CASE WHEN kind = 'outcome' AND status = 'achieved' THEN person_key END)
            AS people_achieving,
        COUNT(CASE WHEN kind = 'engagement' THEN 1 END) AS engagements,
        COUNT(CASE WHEN kind = 'delivery' THEN 1 END) AS deliveries
    FROM activity
    GROUP BY period, area, outcome_area
)
SELECT * FROM by_code
UNION ALL
SELECT * FROM by_area
ORDER BY period, area, outcome_area, outcome_code
