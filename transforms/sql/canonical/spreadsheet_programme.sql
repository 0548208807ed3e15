-- canonical.programme rows for one spreadsheet member: declared in its YAML mappings.
SELECT
    $org_id AS org_id,
    'spreadsheet' AS source_system,
    p.source_id,
    CAST(NULL AS TIMESTAMP) AS source_updated_at,
    FALSE AS is_deleted,
    p._dlt_load_id AS _load_id,
    p.name,
    p.outcome_area
FROM raw.spreadsheet__programme AS p
