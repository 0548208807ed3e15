-- Outcome rows that cannot enter the canonical model: unknown person, or an outcome,
-- status or (when given) programme label with no mapping. One row per problem.
WITH o AS (
    SELECT
        o.*,
        LOWER(TRIM(REGEXP_REPLACE(o.outcome, '\s+', ' ', 'g'))) AS outcome_label,
        LOWER(TRIM(REGEXP_REPLACE(o.status, '\s+', ' ', 'g'))) AS status_label,
        LOWER(TRIM(REGEXP_REPLACE(o.programme, '\s+', ' ', 'g'))) AS programme_label
    FROM raw.spreadsheet__outcome AS o
),
problems AS (
    SELECT o.*, $header_person_source_id AS column_name, o.person_source_id AS raw_value,
        'person ''' || o.person_source_id || ''' is not in the people file (or its row was '
        || 'rejected); fix the id here or the person''s row' AS reason,
        'ref.person_missing' AS rule
    FROM o LEFT JOIN raw.spreadsheet__person AS p ON p.source_id = o.person_source_id
    WHERE p.source_id IS NULL
    UNION ALL
    SELECT o.*, $header_outcome, o.outcome,
        'outcome ''' || o.outcome || ''' has no mapping; add it under mappings.outcomes in '
        || $config_file,
        'map.outcome_unmapped'
    FROM o LEFT JOIN hub.label_map AS m
        ON m.org_id = $org_id AND m.mapping = 'outcome' AND m.label = o.outcome_label
    WHERE m.value IS NULL
    UNION ALL
    SELECT o.*, $header_status, o.status,
        'outcome status ''' || o.status || ''' has no mapping; add it under '
        || 'mappings.outcome_status in ' || $config_file,
        'map.outcome_status_unmapped'
    FROM o LEFT JOIN hub.label_map AS m
        ON m.org_id = $org_id AND m.mapping = 'outcome_status' AND m.label = o.status_label
    WHERE m.value IS NULL
    UNION ALL
    SELECT o.*, $header_programme, o.programme,
        'programme ''' || o.programme || ''' has no mapping; add it under mappings.programmes in '
        || $config_file,
        'map.programme_unmapped'
    FROM o LEFT JOIN hub.label_map AS m
        ON m.org_id = $org_id AND m.mapping = 'programme' AND m.label = o.programme_label
    WHERE o.programme IS NOT NULL AND m.value IS NULL
)
SELECT
    $org_id AS org_id, 'spreadsheet' AS source_system, 'outcome' AS entity,
    _source_file AS source_file, _source_row AS source_row, source_id, column_name, raw_value,
    reason, rule, 'error' AS severity, 'mapping' AS stage, _dlt_load_id AS _load_id
FROM problems
