-- organisation_summary: what each member contributed and what was set aside (no person
-- counts, so no disclosure control is needed), and whether its data is current or held back
-- (its last load or mapping failed, so its last good rows are counted). The published reason
-- is a fixed phrase and a date, never the stored error text (hub.member_status.reason).
WITH loaded AS (
    SELECT org_id, COUNT(*) AS n FROM canonical.person WHERE NOT is_deleted GROUP BY org_id
    UNION ALL
    SELECT org_id, COUNT(*) FROM canonical.programme WHERE NOT is_deleted GROUP BY org_id
    UNION ALL
    SELECT org_id, COUNT(*) FROM canonical.engagement WHERE NOT is_deleted GROUP BY org_id
    UNION ALL
    SELECT org_id, COUNT(*) FROM canonical.service_delivery WHERE NOT is_deleted GROUP BY org_id
    UNION ALL
    SELECT org_id, COUNT(*) FROM canonical.outcome WHERE NOT is_deleted GROUP BY org_id
),
quarantined AS (
    SELECT org_id, COUNT(*) AS n
    FROM quarantine.rejected_rows
    WHERE severity = 'error'
    GROUP BY org_id
)
SELECT
    m.org_id,
    m.name,
    CAST(COALESCE((SELECT SUM(l.n) FROM loaded AS l WHERE l.org_id = m.org_id), 0) AS BIGINT)
        AS records_loaded,
    CAST(COALESCE(q.n, 0) AS BIGINT) AS records_quarantined,
    m.last_refreshed,
    COALESCE(s.status, 'current') AS status,
    COALESCE(s.last_good_load, m.last_refreshed) AS last_good_load,
    CASE
        WHEN s.status = 'held_back'
            THEN 'its last ' || COALESCE(s.stage, 'load') || ' failed on '
                || CAST(CAST(s.failed_at AS DATE) AS TEXT)
    END AS held_back_reason
FROM hub.member AS m
LEFT JOIN quarantined AS q ON q.org_id = m.org_id
LEFT JOIN hub.member_status AS s ON s.org_id = m.org_id
ORDER BY m.org_id
