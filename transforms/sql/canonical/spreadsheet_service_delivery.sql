-- canonical.service_delivery: rows whose person exists and whose programme label maps.
SELECT
    $org_id AS org_id,
    'spreadsheet' AS source_system,
    d.source_id,
    d.source_updated_at,
    FALSE AS is_deleted,
    d._dlt_load_id AS _load_id,
    d.person_source_id,
    prog.value AS programme_source_id,
    d.service_name,
    d.delivered_on,
    d.quantity,
    d.unit
FROM raw.spreadsheet__service_delivery AS d
JOIN raw.spreadsheet__person AS p
    ON p.source_id = d.person_source_id
JOIN hub.label_map AS prog
    ON prog.org_id = $org_id AND prog.mapping = 'programme'
    AND prog.label = LOWER(TRIM(REGEXP_REPLACE(d.programme, '\s+', ' ', 'g')))
