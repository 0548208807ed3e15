-- Service delivery rows that cannot enter the canonical model: unknown person or an
-- unmapped programme. One row per problem.
WITH d AS (
    SELECT
        d.*,
        LOWER(TRIM(REGEXP_REPLACE(d.programme, '\s+', ' ', 'g'))) AS programme_label
    FROM raw.spreadsheet__service_delivery AS d
),
problems AS (
    SELECT d.*, $header_person_source_id AS column_name, d.person_source_id AS raw_value,
        'person ''' || d.person_source_id || ''' is not in the people file (or its row was '
        || 'rejected); fix the id here or the person''s row' AS reason,
        'ref.person_missing' AS rule
    FROM d LEFT JOIN raw.spreadsheet__person AS p ON p.source_id = d.person_source_id
    WHERE p.source_id IS NULL
    UNION ALL
    SELECT d.*, $header_programme, d.programme,
        'programme ''' || d.programme || ''' has no mapping; add it under mappings.programmes in '
        || $config_file,
        'map.programme_unmapped'
    FROM d LEFT JOIN hub.label_map AS m
        ON m.org_id = $org_id AND m.mapping = 'programme' AND m.label = d.programme_label
    WHERE m.value IS NULL
)
SELECT
    $org_id AS org_id, 'spreadsheet' AS source_system, 'service_delivery' AS entity,
    _source_file AS source_file, _source_row AS source_row, source_id, column_name, raw_value,
    reason, rule, 'error' AS severity, 'mapping' AS stage, _dlt_load_id AS _load_id
FROM problems
