-- hub.activity with each person's area as it is published. A postcode district is named in
-- a quarter only when at least $threshold distinct people from it were counted in that
-- quarter; people from smaller districts are counted in 'other' (people without a UK
-- postcode stay in 'unknown'). Why: a named district is then never a group of fewer than the
-- threshold, so the list of districts a quarter names gives nothing away, and the tables can
-- show every named district in full (see transforms/disclosure/layout notes).
WITH district_people AS (
    SELECT period, area, COUNT(DISTINCT person_key) AS people
    FROM hub.activity
    GROUP BY period, area
)
SELECT
    a.period, a.kind, a.org_id, a.person_key, a.outcome_area, a.outcome_code, a.status,
    CASE
        WHEN a.area = 'unknown' THEN 'unknown'
        WHEN d.people >= CAST($threshold AS INTEGER) THEN a.area
        ELSE 'other'
    END AS area
FROM hub.activity AS a
JOIN district_people AS d ON d.period = a.period AND d.area = a.area
