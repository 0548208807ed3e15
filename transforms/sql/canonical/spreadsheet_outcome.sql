-- canonical.outcome: rows whose person exists and whose outcome and status labels map.
-- The programme is optional; when given it must map too.
SELECT
    $org_id AS org_id,
    'spreadsheet' AS source_system,
    o.source_id,
    o.source_updated_at,
    FALSE AS is_deleted,
    o._dlt_load_id AS _load_id,
    o.person_source_id,
    prog.value AS programme_source_id,
    code.value AS outcome_code,
    stat.value AS status,
    o.measured_on,
    o.value
FROM raw.spreadsheet__outcome AS o
JOIN raw.spreadsheet__person AS p
    ON p.source_id = o.person_source_id
JOIN hub.label_map AS code
    ON code.org_id = $org_id AND code.mapping = 'outcome'
    AND code.label = LOWER(TRIM(REGEXP_REPLACE(o.outcome, '\s+', ' ', 'g')))
JOIN hub.label_map AS stat
    ON stat.org_id = $org_id AND stat.mapping = 'outcome_status'
    AND stat.label = LOWER(TRIM(REGEXP_REPLACE(o.status, '\s+', ' ', 'g')))
LEFT JOIN hub.label_map AS prog
    ON prog.org_id = $org_id AND prog.mapping = 'programme'
    AND prog.label = LOWER(TRIM(REGEXP_REPLACE(o.programme, '\s+', ' ', 'g')))
WHERE o.programme IS NULL OR prog.value IS NOT NULL
