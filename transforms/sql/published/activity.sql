-- One row per counted activity per quarter: an engagement active in the quarter (not merely
-- applied), a service delivery dated in it, or an outcome measured in it; each carries the
-- hub person_key, the member and the outcome area it counts towards, and the person's area
-- (the outward code of their most recent UK postcode, or 'unknown').
WITH linked AS (
    SELECT l.org_id, l.source_id, l.person_key
    FROM hub.person_link AS l
),
person_area AS (
    -- The outward code of the person's most recent postcode that is a UK postcode; 'unknown'
    -- when none is. Anything else a member writes (a foreign postcode, an e-mail, free text)
    -- never becomes an area.
    SELECT person_key, COALESCE(LEFT(uk_postcode, LENGTH(uk_postcode) - 3), 'unknown') AS area
    FROM (
        SELECT
            person_key,
            uk_postcode,
            ROW_NUMBER() OVER (
                PARTITION BY person_key
                ORDER BY
                    CASE WHEN uk_postcode IS NULL THEN 1 ELSE 0 END,
                    source_updated_at DESC NULLS LAST,
                    org_id,
                    source_id
            ) AS rank_in_person
        FROM (
            SELECT
                l.person_key,
                CASE
                    WHEN REGEXP_MATCHES(
                        UPPER(REPLACE(TRIM(p.postcode), ' ', '')),
                        '^([A-Z]{1,2}[0-9][A-Z0-9]?|GIR)[0-9][A-Z]{2}$'
                    )
                        THEN UPPER(REPLACE(TRIM(p.postcode), ' ', ''))
                END AS uk_postcode,
                p.source_updated_at,
                p.org_id,
                p.source_id
            FROM linked AS l
            JOIN canonical.person AS p ON p.org_id = l.org_id AND p.source_id = l.source_id
            WHERE NOT p.is_deleted
        ) AS person_postcode
    ) AS ranked
    WHERE rank_in_person = 1
),
engagements AS (
    SELECT
        q.period, 'engagement' AS kind, e.org_id, l.person_key, prog.outcome_area,
        CAST(NULL AS TEXT) AS outcome_code, CAST(NULL AS TEXT) AS status
    FROM canonical.engagement AS e
    JOIN hub.period AS q
        ON e.start_date <= q.end_date AND (e.end_date IS NULL OR e.end_date >= q.start_date)
    JOIN canonical.programme AS prog
        ON prog.org_id = e.org_id AND prog.source_id = e.programme_source_id
    JOIN linked AS l ON l.org_id = e.org_id AND l.source_id = e.person_source_id
    WHERE NOT e.is_deleted AND NOT prog.is_deleted AND e.status <> 'applied'
),
deliveries AS (
    SELECT
        q.period, 'delivery' AS kind, d.org_id, l.person_key, prog.outcome_area,
        CAST(NULL AS TEXT) AS outcome_code, CAST(NULL AS TEXT) AS status
    FROM canonical.service_delivery AS d
    JOIN hub.period AS q ON d.delivered_on BETWEEN q.start_date AND q.end_date
    JOIN canonical.programme AS prog
        ON prog.org_id = d.org_id AND prog.source_id = d.programme_source_id
    JOIN linked AS l ON l.org_id = d.org_id AND l.source_id = d.person_source_id
    WHERE NOT d.is_deleted AND NOT prog.is_deleted
),
outcomes AS (
    SELECT
        q.period, 'outcome' AS kind, o.org_id, l.person_key, t.outcome_area,
        o.outcome_code, o.status
    FROM canonical.outcome AS o
    JOIN hub.period AS q ON o.measured_on BETWEEN q.start_date AND q.end_date
    JOIN hub.outcome_taxonomy AS t ON t.outcome_code = o.outcome_code
    JOIN linked AS l ON l.org_id = o.org_id AND l.source_id = o.person_source_id
    WHERE NOT o.is_deleted
),
activity AS (
    SELECT * FROM engagements
    UNION ALL
    SELECT * FROM deliveries
    UNION ALL
    SELECT * FROM outcomes
)
SELECT a.*, COALESCE(pa.area, 'unknown') AS area
FROM activity AS a
LEFT JOIN person_area AS pa ON pa.person_key = a.person_key
