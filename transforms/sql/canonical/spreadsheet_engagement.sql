-- canonical.engagement: rows whose person exists and whose programme and status labels map.
-- Rows that fail any of these go to quarantine (quarantine/spreadsheet_engagement.sql).
SELECT
    $org_id AS org_id,
    'spreadsheet' AS source_system,
    e.source_id,
    e.source_updated_at,
    FALSE AS is_deleted,
    e._dlt_load_id AS _load_id,
    e.person_source_id,
    prog.value AS programme_source_id,
    stat.value AS status,
    e.start_date,
    e.end_date
FROM raw.spreadsheet__engagement AS e
JOIN raw.spreadsheet__person AS p
    ON p.source_id = e.person_source_id
JOIN hub.label_map AS prog
    ON prog.org_id = $org_id AND prog.mapping = 'programme'
    AND prog.label = LOWER(TRIM(REGEXP_REPLACE(e.programme, '\s+', ' ', 'g')))
JOIN hub.label_map AS stat
    ON stat.org_id = $org_id AND stat.mapping = 'engagement_status'
    AND stat.label = LOWER(TRIM(REGEXP_REPLACE(e.status, '\s+', ' ', 'g')))
