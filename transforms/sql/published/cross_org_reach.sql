-- cross_org_reach before disclosure control: people served in each quarter and area, by how
-- many member organisations served them in that quarter (only consenting records link
-- across members, so a person without consent counts once per member).
WITH served AS (
    SELECT period, person_key, MIN(area) AS area, COUNT(DISTINCT org_id) AS members
    FROM hub.activity
    GROUP BY period, person_key
),
placed AS (
    SELECT period, area, members FROM served
    UNION ALL
    SELECT period, 'all' AS area, members FROM served
)
SELECT
    period,
    area,
    COUNT(*) AS people,
    COUNT(CASE WHEN members = 1 THEN 1 END) AS served_by_1,
    COUNT(CASE WHEN members = 2 THEN 1 END) AS served_by_2,
    COUNT(CASE WHEN members >= 3 THEN 1 END) AS served_by_3_plus
FROM placed
GROUP BY period, area
ORDER BY period, area
