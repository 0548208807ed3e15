-- Engagement rows that cannot enter the canonical model: unknown person, or a programme or
-- status label with no mapping in the member's YAML. One row per problem.
WITH e AS (
    SELECT
        e.*,
        LOWER(TRIM(REGEXP_REPLACE(e.programme, '\s+', ' ', 'g'))) AS programme_label,
        LOWER(TRIM(REGEXP_REPLACE(e.status, '\s+', ' ', 'g'))) AS status_label
    FROM raw.spreadsheet__engagement AS e
),
problems AS (
    SELECT e.*, $header_person_source_id AS column_name, e.person_source_id AS raw_value,
        'person ''' || e.person_source_id || ''' is not in the people file (or its row was '
        || 'rejected); fix the id here or the person''s row' AS reason,
        'ref.person_missing' AS rule
    FROM e LEFT JOIN raw.spreadsheet__person AS p ON p.source_id = e.person_source_id
    WHERE p.source_id IS NULL
    UNION ALL
    SELECT e.*, $header_programme, e.programme,
        'programme ''' || e.programme || ''' has no mapping; add it under mappings.programmes in '
        || $config_file,
        'map.programme_unmapped'
    FROM e LEFT JOIN hub.label_map AS m
        ON m.org_id = $org_id AND m.mapping = 'programme' AND m.label = e.programme_label
    WHERE m.value IS NULL
    UNION ALL
    SELECT e.*, $header_status, e.status,
        'engagement status ''' || e.status || ''' has no mapping; add it under '
        || 'mappings.engagement_status in ' || $config_file,
        'map.engagement_status_unmapped'
    FROM e LEFT JOIN hub.label_map AS m
        ON m.org_id = $org_id AND m.mapping = 'engagement_status' AND m.label = e.status_label
    WHERE m.value IS NULL
)
SELECT
    $org_id AS org_id, 'spreadsheet' AS source_system, 'engagement' AS entity,
    _source_file AS source_file, _source_row AS source_row, source_id, column_name, raw_value,
    reason, rule, 'error' AS severity, 'mapping' AS stage, _dlt_load_id AS _load_id
FROM problems
