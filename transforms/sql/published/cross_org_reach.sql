-- cross_org_reach before disclosure control: people served in each quarter and area, by how
-- many member organisations served them in that quarter (only consenting records link
-- across members, so a person without consent counts once per member). Every quarter has a
-- row for each district it names, for 'other', 'unknown' and 'all', whether or not anyone is
-- in it: which rows exist must not depend on small counts (a missing row would say "0").
WITH served AS (
    SELECT period, person_key, MIN(area) AS area, COUNT(DISTINCT org_id) AS members
    FROM hub.published_activity
    GROUP BY period, person_key
),
placed AS (
    SELECT period, area, members FROM served
    UNION ALL
    SELECT period, 'all' AS area, members FROM served
),
counted AS (
    SELECT
        period,
        area,
        COUNT(*) AS people,
        COUNT(CASE WHEN members = 1 THEN 1 END) AS served_by_1,
        COUNT(CASE WHEN members = 2 THEN 1 END) AS served_by_2,
        COUNT(CASE WHEN members >= 3 THEN 1 END) AS served_by_3_plus
    FROM placed
    GROUP BY period, area
),
grid AS (
    SELECT DISTINCT period, area FROM hub.published_activity
    UNION
    SELECT period, fixed.area
    FROM hub.period
    CROSS JOIN (VALUES ('all'), ('other'), ('unknown')) AS fixed(area)
)
SELECT
    g.period,
    g.area,
    CAST(COALESCE(c.people, 0) AS BIGINT) AS people,
    CAST(COALESCE(c.served_by_1, 0) AS BIGINT) AS served_by_1,
    CAST(COALESCE(c.served_by_2, 0) AS BIGINT) AS served_by_2,
    CAST(COALESCE(c.served_by_3_plus, 0) AS BIGINT) AS served_by_3_plus
FROM grid AS g
LEFT JOIN counted AS c ON c.period = g.period AND c.area = g.area
ORDER BY g.period, g.area
